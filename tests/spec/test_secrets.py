"""Secret env values: `env: {NAME: {secret: value}}` — read back as written, hidden when shown."""

from __future__ import annotations

from galaxy.spec import HIDDEN, parse_job, redacted
from tests.spec._jobs import VALID


def job(env: dict[str, object]) -> dict[str, object]:
    return {**VALID, "env": env}


def test_a_secret_value_reaches_the_env_and_the_plain_form_says_it_is_secret() -> None:
    spec = parse_job(job({"LOG": "info", "DB_PASSWORD": {"secret": "hunter2"}, "PIN": {"secret": 1234}}))
    assert spec.env == {"LOG": "info", "DB_PASSWORD": "hunter2", "PIN": "1234"}
    assert spec.secrets == frozenset({"DB_PASSWORD", "PIN"})
    assert spec.to_dict()["env"] == {"LOG": "info", "DB_PASSWORD": {"secret": "hunter2"}, "PIN": {"secret": "1234"}}
    assert parse_job(spec.to_dict()) == spec


def test_shown_specs_hide_every_secret_value_and_nothing_else() -> None:
    plain = parse_job(job({"LOG": "info", "DB_PASSWORD": {"secret": "hunter2"}})).to_dict()
    shown = redacted(plain)
    assert shown["env"] == {"LOG": "info", "DB_PASSWORD": {"secret": HIDDEN}}
    assert "hunter2" not in repr(shown) and {k: v for k, v in shown.items() if k != "env"} == \
        {k: v for k, v in plain.items() if k != "env"}
    assert plain["env"]["DB_PASSWORD"] == {"secret": "hunter2"}, "the original is left as it was"


def test_a_changed_secret_or_a_value_made_secret_is_a_new_spec() -> None:
    base = parse_job(job({"DB_PASSWORD": {"secret": "a"}}))
    assert parse_job(job({"DB_PASSWORD": {"secret": "b"}})).fingerprint() != base.fingerprint()
    assert parse_job(job({"DB_PASSWORD": "a"})).fingerprint() != base.fingerprint()
