"""Protocol parameters of a DI-QKD run: loadable from TOML, validated up front.

The protocol is the spot-checking CHSH protocol of Arnon-Friedman et al. (Nat Commun 9, 459,
2018): every round is a test round with probability ``gamma`` (x, y uniform in {0, 1}) or a key
round with inputs ``key_inputs`` = (0, 2). The run is accepted when the number of won CHSH games
reaches the threshold; the key length then follows from the finite-size bound.

A protocol file (see ``docs/pipeline.md`` and ``testdata/protocols/``)::

    schema = 1                      # optional; the only version is 1
    name = "oxford-2022"            # free text, reported
    description = "..."             # free text, reported
    gamma = 0.05                    # test-round probability, in (0, 1)
    key_inputs = [0, 2]             # (x, y) of key rounds; only [0, 2] is supported
    method = "eat2"                 # finite-size method: "eat2" or "geat"
    noisy_preprocessing = 0.0       # Alice flips each key bit with this probability, in [0, 0.5)
    min_key_bits = 1                # shorter certified keys are an abort ("no positive key")

    [expected]                      # design values of the link (not measured: the proof does that)
    S = 2.64                        # CHSH value: EC prior of test rounds, and the derived threshold
    qber = 0.018                    # key-round QBER: EC prior of key rounds

    [threshold]                     # optional table
    omega = 0.8255                  # winning fraction threshold; omitted -> derived at run time
                                    # from expected.S, n, gamma and epsilon.eps_complete

    [epsilon]                       # all in (0, 1)
    eps_s = 1e-10                   # smoothing
    eps_pa = 1e-10                  # privacy amplification (leftover hash lemma)
    eps_ea = 1e-10                  # entropy accumulation
    eps_cor = 1e-10                 # correctness (EC verification)
    eps_complete = 1e-2             # honest abort probability target (threshold derivation)

    [ec]                            # passed to diqkd.reconciliation.ReconciliationConfig
    ...

Every violation is a :class:`~diqkd.errors.ConfigError` naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diqkd.errors import ConfigError

__all__ = ["Epsilons", "Protocol", "METHODS", "PROTOCOL_SCHEMA"]

PROTOCOL_SCHEMA = 1
METHODS = ("eat2", "geat")

_TOP_KEYS = {
    "schema", "name", "description", "gamma", "key_inputs", "method", "noisy_preprocessing",
    "min_key_bits", "expected", "threshold", "epsilon", "ec",
}
_EXPECTED_KEYS = {"S", "qber"}
_THRESHOLD_KEYS = {"omega"}


@dataclass(frozen=True)
class Epsilons:
    """The epsilon budget: eps_sec = 2 eps_s + eps_pa + eps_ea (method dependent), eps_cor."""

    eps_s: float = 1e-10
    eps_pa: float = 1e-10
    eps_ea: float = 1e-10
    eps_cor: float = 1e-10
    eps_complete: float = 1e-2

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def budget(self) -> Any:
        """The :class:`diqkd.security.EpsilonBudget` with these values."""
        try:
            from diqkd.security import EpsilonBudget  # type: ignore[attr-defined]
        except ImportError:  # the package __init__ does not re-export it yet
            from diqkd.security.finite import EpsilonBudget

        return EpsilonBudget(
            eps_s=self.eps_s, eps_pa=self.eps_pa, eps_ea=self.eps_ea, eps_cor=self.eps_cor,
            eps_complete=self.eps_complete,
        )


def _where(source: str | None, key: str) -> str:
    return f"{source}: key {key!r}" if source else f"key {key!r}"


def _number(value: Any, key: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_where(source, key)} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{_where(source, key)} must be finite, got {value!r}")
    return v


def _open_unit(value: Any, key: str, source: str | None) -> float:
    v = _number(value, key, source)
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{_where(source, key)} = {value!r} is outside the open interval (0, 1)")
    return v


def _unknown(table: Mapping[str, Any], allowed: set[str], prefix: str, source: str | None) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(
            f"{_where(source, prefix + extra[0])}: unknown key "
            f"(allowed{' in [' + prefix.rstrip('.') + ']' if prefix else ''}: {sorted(allowed)})"
        )


def _table(data: Mapping[str, Any], key: str, source: str | None) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_where(source, key)} must be a table ([{key}]), got {value!r}")
    return value


def _ec_fields() -> set[str] | None:
    """Field names of ReconciliationConfig, or None while that module does not exist."""
    try:
        from diqkd.reconciliation import ReconciliationConfig
    except ImportError:
        return None
    if dataclasses.is_dataclass(ReconciliationConfig):
        return {f.name for f in dataclasses.fields(ReconciliationConfig)}
    return None


@dataclass(frozen=True)
class Protocol:
    """Validated protocol parameters (see the module docstring for the meaning of each field)."""

    gamma: float
    expected_S: float
    expected_qber: float
    omega_threshold: float | None = None
    eps: Epsilons = field(default_factory=Epsilons)
    noisy_preprocessing: float = 0.0
    method: str = "eat2"
    key_inputs: tuple[int, int] = (0, 2)
    min_key_bits: int = 1
    ec: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        # Constructing a Protocol directly validates exactly like a file does.
        Protocol._validate(self.to_dict(), None)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> Protocol:
        """Load and validate a protocol file; errors name the file, the key and the value."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read protocol file {str(p)!r}: {exc.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"protocol file {str(p)!r} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"protocol file {str(p)!r} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_toml_string(cls, text: str, source: str = "<string>") -> Protocol:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"protocol {source} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Protocol:
        """Build from the nested mapping of a protocol file (or of :meth:`to_dict`)."""
        kw = cls._validate(data, source)
        obj = object.__new__(cls)
        for k, v in kw.items():
            object.__setattr__(obj, k, v)
        return obj

    @staticmethod
    def _validate(data: Mapping[str, Any], source: str | None) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ConfigError(f"protocol {source or ''} must be a table")
        _unknown(data, _TOP_KEYS, "", source)
        schema = data.get("schema", PROTOCOL_SCHEMA)
        if schema != PROTOCOL_SCHEMA:
            raise ConfigError(f"{_where(source, 'schema')} = {schema!r}: unsupported protocol "
                              f"schema version (this diqkd reads version {PROTOCOL_SCHEMA})")
        for key in ("gamma",):
            if key not in data:
                raise ConfigError(f"{_where(source, key)} is required")
        gamma = _open_unit(data["gamma"], "gamma", source)

        key_inputs = data.get("key_inputs", [0, 2])
        if (not isinstance(key_inputs, list | tuple) or len(key_inputs) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in key_inputs)):
            raise ConfigError(f"{_where(source, 'key_inputs')} must be a pair of integers, "
                              f"got {key_inputs!r}")
        if tuple(key_inputs) != (0, 2):
            raise ConfigError(f"{_where(source, 'key_inputs')} = {list(key_inputs)!r}: only "
                              "[0, 2] (Alice x = 0, Bob y = 2) is supported")

        method = data.get("method", "eat2")
        if method not in METHODS:
            raise ConfigError(f"{_where(source, 'method')} = {method!r}: expected one of "
                              f"{list(METHODS)}")

        p = _number(data.get("noisy_preprocessing", 0.0), "noisy_preprocessing", source)
        if not 0.0 <= p < 0.5:
            raise ConfigError(f"{_where(source, 'noisy_preprocessing')} = {p!r} is outside "
                              "[0, 0.5)")

        min_key = data.get("min_key_bits", 1)
        if isinstance(min_key, bool) or not isinstance(min_key, int) or min_key < 1:
            raise ConfigError(f"{_where(source, 'min_key_bits')} = {min_key!r}: must be an "
                              "integer >= 1")

        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise ConfigError(f"{_where(source, key)} must be a string, got "
                                  f"{data.get(key)!r}")

        expected = _table(data, "expected", source)
        _unknown(expected, _EXPECTED_KEYS, "expected.", source)
        for key in ("S", "qber"):
            if key not in expected:
                raise ConfigError(f"{_where(source, 'expected.' + key)} is required (design "
                                  "value of the link, used for the EC priors and the threshold)")
        s_exp = _number(expected["S"], "expected.S", source)
        if not 2.0 < s_exp <= 2.0 * math.sqrt(2.0) + 1e-12:
            raise ConfigError(f"{_where(source, 'expected.S')} = {expected['S']!r} is outside "
                              "(2, 2 sqrt 2]: no key can be certified below the local bound")
        q_exp = _number(expected["qber"], "expected.qber", source)
        if not 0.0 < q_exp < 0.5:
            raise ConfigError(f"{_where(source, 'expected.qber')} = {expected['qber']!r} is "
                              "outside (0, 0.5)")

        threshold = _table(data, "threshold", source)
        _unknown(threshold, _THRESHOLD_KEYS, "threshold.", source)
        omega: float | None = None
        if "omega" in threshold:
            omega = _number(threshold["omega"], "threshold.omega", source)
            hi = (2.0 + math.sqrt(2.0)) / 4.0
            if not 0.75 < omega <= hi + 1e-12:
                raise ConfigError(f"{_where(source, 'threshold.omega')} = {threshold['omega']!r}"
                                  f" is outside (0.75, {hi:.6f}]: the local bound is 0.75")

        eps_table = _table(data, "epsilon", source)
        names = {f.name for f in dataclasses.fields(Epsilons)}
        _unknown(eps_table, names, "epsilon.", source)
        eps_kw = {k: _open_unit(v, "epsilon." + k, source) for k, v in eps_table.items()}
        eps = Epsilons(**eps_kw)

        ec = _table(data, "ec", source)
        allowed = _ec_fields()
        if allowed is not None:
            _unknown(ec, allowed, "ec.", source)
        # Values too, not only names: a bad frame length must stop the run before any record is
        # read, with the protocol file named (the reconciliation config validates its fields).
        _ec_config(ec, eps, source)
        return {
            "gamma": gamma, "expected_S": s_exp, "expected_qber": q_exp,
            "omega_threshold": omega, "eps": eps, "noisy_preprocessing": p, "method": method,
            "key_inputs": (0, 2), "min_key_bits": int(min_key), "ec": dict(ec),
            "name": data.get("name", ""), "description": data.get("description", ""),
        }

    # -- views ------------------------------------------------------------------------------
    @property
    def expected_omega(self) -> float:
        """Expected CHSH winning probability (4 + S) / 8."""
        return (4.0 + self.expected_S) / 8.0

    def to_dict(self) -> dict[str, Any]:
        """The nested mapping of a protocol file (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "schema": PROTOCOL_SCHEMA,
            "name": self.name,
            "description": self.description,
            "gamma": self.gamma,
            "key_inputs": list(self.key_inputs),
            "method": self.method,
            "noisy_preprocessing": self.noisy_preprocessing,
            "min_key_bits": self.min_key_bits,
            "expected": {"S": self.expected_S, "qber": self.expected_qber},
            "threshold": {} if self.omega_threshold is None else {"omega": self.omega_threshold},
            "epsilon": self.eps.to_dict(),
            "ec": dict(self.ec),
        }
        return out

    def to_toml(self) -> str:
        """A protocol file with these parameters (what ``diqkd run`` writes next to its report)."""
        d = self.to_dict()
        lines = []
        for k, v in d.items():
            if not isinstance(v, dict):
                lines.append(f"{k} = {_toml_value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(f"\n[{k}]")
                lines.extend(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())
        return "\n".join(lines) + "\n"

    @property
    def sha256(self) -> str:
        """Digest of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, **changes: Any) -> Protocol:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def reconciliation_config(self) -> Any:
        """The :class:`diqkd.reconciliation.ReconciliationConfig` of the ``[ec]`` table.

        ``eps_cor`` of the budget is passed on when the config has such a field and the table
        does not set it, so that the verification tag length follows the budget.
        """
        return _ec_config(self.ec, self.eps, None)


def _ec_config(ec: Mapping[str, Any], eps: Epsilons, source: str | None) -> Any:
    """Build the reconciliation config of an ``[ec]`` table; ConfigError names file and values.

    ``eps_cor`` of the budget is passed on when the table does not set it.
    """
    from diqkd.reconciliation import ReconciliationConfig

    kw = dict(ec)
    if dataclasses.is_dataclass(ReconciliationConfig):
        names = {f.name for f in dataclasses.fields(ReconciliationConfig)}
        if "eps_cor" in names and "eps_cor" not in kw:
            kw["eps_cor"] = eps.eps_cor
    try:
        return ReconciliationConfig(**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(source, 'ec')}: invalid settings {dict(ec)!r}: {exc}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
