from edge.clock import ClockState, clock_state


def test_clock_state_reads_the_kernel_without_privilege():
    state = clock_state()
    assert isinstance(state, ClockState)
    if state.synced is not None:  # Linux: adjtimex answered
        assert state.max_error_ms is not None and state.max_error_ms >= 0
        assert state.offset_ms is not None
