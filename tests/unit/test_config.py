import pytest

from edge.config import CameraConfig, field_reference, load_camera_config, load_site_config
from edge.errors import ConfigError


def write(tmp_path, text, name="cam.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_embedded_default_is_valid():
    cfg = load_camera_config(None)
    assert cfg.camera.id == "camera"
    assert cfg.privacy.feeds[0].name == "reads"


def test_error_names_file_key_value_and_rule(tmp_path):
    p = write(tmp_path, '[detector]\nthreshold = 1.5\n[camera]\nid = "cam/1"\n')
    with pytest.raises(ConfigError) as err:
        load_camera_config(p)
    msg = str(err.value)
    assert str(p) in msg
    assert "detector.threshold = 1.5" in msg and "less than or equal to 0.99" in msg
    assert "camera.id = 'cam/1'" in msg and "not allowed" in msg


def test_unknown_key_is_refused(tmp_path):
    p = write(tmp_path, "[tracking]\ntimeout = 3\n")
    with pytest.raises(ConfigError, match=r"tracking.timeout: unknown key"):
        load_camera_config(p)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_camera_config(write(tmp_path, "[camera\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_camera_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("camera_id", ["a+b", "a#", "", "x" * 65, "-lead", "a b", "cam1\n"])  # "$" matched before a final newline
def test_camera_ids_that_break_mqtt_topics_are_refused(camera_id):
    with pytest.raises(Exception, match="camera id|at least"):
        CameraConfig.model_validate({"camera": {"id": camera_id}})


def test_feed_kinds_need_their_files(tmp_path):
    p = write(tmp_path, '[[privacy.feeds]]\nname = "stats"\nkind = "pseudonymised"\n')
    with pytest.raises(ConfigError, match="hmac_key_file"):
        load_camera_config(p)


def test_a_feed_cannot_take_the_status_topic(tmp_path):
    # Its plates would reach <prefix>/<camera>/status, which monitoring accounts may read.
    p = write(tmp_path, '[[privacy.feeds]]\nname = "status"\nkind = "full"\n')
    with pytest.raises(ConfigError, match="'status' is reserved"):
        load_camera_config(p)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    p = write(tmp_path, '[camera]\ncalibration = "cal/demo.toml"\n')
    cfg = load_camera_config(p)
    assert cfg.resolve(cfg.camera.calibration) == tmp_path / "cal/demo.toml"


def test_overrides_are_validated():
    cfg = load_camera_config(None)
    assert cfg.with_overrides(camera={"id": "lane1"}).camera.id == "lane1"
    with pytest.raises(ConfigError, match="camera.id"):
        cfg.with_overrides(camera={"id": "bad/id"})


def test_site_needs_cameras(tmp_path):
    with pytest.raises(ConfigError, match="cameras"):
        load_site_config(write(tmp_path, "restart_max_s = 5\n", "site.toml"))


def test_field_reference_documents_every_field():
    keys = {k for k, _, desc in field_reference()}
    assert {"camera.id", "detector.threshold", "mqtt.broker", "privacy.retention_hours"} <= keys
    assert all(desc for _, _, desc in field_reference())


def test_reader_countries_must_have_a_grammar():
    assert CameraConfig.model_validate({"reader": {"countries": ["gb", "ie"]}}).reader.countries == ("GB", "IE")
    with pytest.raises(Exception, match="no plate grammar for country 'RO'"):
        CameraConfig.model_validate({"reader": {"countries": ["RO"]}})


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys):
    # Saved as Latin-1 (Windows editors still do): tomllib raised UnicodeDecodeError, a traceback.
    p = tmp_path / "cam.toml"
    p.write_bytes(b'[camera]\nsite_id = "Caf\xe9 corner"\n')
    with pytest.raises(ConfigError, match=r"cam.toml: .*line 2.*UTF-8"):
        load_camera_config(p)
    from edge.cli import main

    assert main(["validate-config", str(p)]) == 1
    assert "line 2" in capsys.readouterr().err


def test_errors_never_show_stream_or_broker_credentials(tmp_path, capsys):
    # A bad value is echoed back so the engineer sees it; a password in it must not reach the terminal or a log.
    p = write(tmp_path, '[mqtt]\nbroker = "mqtt://anpr:s3cret@10.0.0.9:1883/anpr"\n[capture]\nsource = ["rtsp://admin:hunter2@10.0.0.5/s1"]\n')
    with pytest.raises(ConfigError) as err:
        load_camera_config(p)
    assert "mqtt.broker" in str(err.value) and "capture.source" in str(err.value)
    from edge.cli import main

    assert main(["validate-config", str(p)]) == 1
    shown = str(err.value) + capsys.readouterr().err
    assert "s3cret" not in shown and "hunter2" not in shown


@pytest.mark.parametrize("broker", ["mqtt://host:70000", "mqtt://host:0", "mqtt://host:http", "mqtts://:8883"])
def test_a_broker_address_the_publisher_cannot_use_is_refused(broker):
    # These passed validation, then `edge run` died with a ValueError traceback (or used port 1883 for :0).
    with pytest.raises(Exception, match="broker"):
        CameraConfig.model_validate({"mqtt": {"broker": broker}})


def test_broker_credentials_belong_in_username_and_password_file():
    # The publisher connects with mqtt.username and mqtt.password_file only: a user:password in the URL was
    # silently dropped (the broker then refused the camera) and sat in the config in clear.
    with pytest.raises(ConfigError, match="mqtt.username and mqtt.password_file") as err:
        load_camera_config(None).with_overrides(mqtt={"broker": "mqtts://anpr:s3cret@broker.example:8883"})  # --broker
    assert "s3cret" not in str(err.value)
    assert CameraConfig.model_validate({"mqtt": {"broker": "mqtts://broker.example:8883/"}}).mqtt.broker


def test_tls_files_with_a_plain_mqtt_broker_are_refused(tmp_path):
    # The publisher sets up TLS for mqtts:// only: with mqtt:// the CA was ignored and reads (and the
    # broker password) went over the network in clear while the config looked secured.
    p = write(tmp_path, '[mqtt]\nbroker = "mqtt://broker.example:8883"\nca_file = "ca.pem"\n')
    with pytest.raises(ConfigError, match="mqtts://"):
        load_camera_config(p)
    assert load_camera_config(write(tmp_path, '[mqtt]\nbroker = "mqtts://broker.example:8883"\nca_file = "ca.pem"\n')).mqtt.ca_file


def test_a_password_file_without_a_user_name_is_refused(tmp_path):
    # The publisher logs in only when username is set: the password was dropped silently.
    with pytest.raises(ConfigError, match="username"):
        load_camera_config(write(tmp_path, '[mqtt]\npassword_file = "pw"\n'))


def test_backoff_order_error_shows_both_values(tmp_path):
    p = write(tmp_path, "[capture]\nreconnect_initial_s = 20\nreconnect_max_s = 5\n")
    with pytest.raises(ConfigError) as err:
        load_camera_config(p)
    line = next(ln for ln in str(err.value).splitlines() if "reconnect_max_s" in ln)
    assert "5" in line and "20" in line


def test_site_restart_backoff_must_be_in_order(tmp_path):
    # restart_max_s is "the longest wait between restarts", yet the first wait was restart_initial_s, longer.
    p = write(tmp_path, 'restart_initial_s = 30\nrestart_max_s = 5\n[[cameras]]\nconfig = "cam.toml"\n', "site.toml")
    with pytest.raises(ConfigError, match="restart_max_s = 5.0 must be at least restart_initial_s = 30.0"):
        load_site_config(p)


def test_a_motion_threshold_that_would_blind_the_camera_is_refused():
    import pytest as _pytest

    from edge.config import CameraConfig
    from edge.errors import ConfigError

    with _pytest.raises(ConfigError, match="detector.motion_threshold"):
        CameraConfig().with_overrides(detector={"motion_threshold": 0.5})
