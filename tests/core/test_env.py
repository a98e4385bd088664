import pytest

from portal.env import ConfigError, env_bool, env_choice, env_int, env_list, env_str


def test_typed_helpers(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 0, minimum=1) == 42
    assert env_list("X_LIST") == ["a", "b", "c"]
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    monkeypatch.setenv("X_SECRET", "from-env")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_str("X_SECRET") == "from-file"  # *_FILE wins


@pytest.mark.parametrize(
    ("name", "value", "call", "message"),
    [
        ("X_BOOL", "maybe", lambda: env_bool("X_BOOL"), "not a boolean"),
        ("X_INT", "ten", lambda: env_int("X_INT", 1), "not an integer"),
        ("X_INT", "0", lambda: env_int("X_INT", 1, minimum=1), "below the minimum"),
        ("X_CHOICE", "prod", lambda: env_choice("X_CHOICE", ("development", "production"), "development"), "one of"),
        ("X_REQ", "", lambda: env_str("X_REQ", required=True), "must be set"),
    ],
)
def test_bad_values_fail_fast_with_the_variable_name(monkeypatch, name, value, call, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        call()


def test_missing_secret_file_is_reported(monkeypatch):
    monkeypatch.setenv("X_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ConfigError, match="X_SECRET_FILE"):
        env_str("X_SECRET")
