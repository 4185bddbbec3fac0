"""Typed settings: environment variables plus the TOML file named by AD1411_CONFIG."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.dns import dns_name_problem, normalize_dns_name
from bot.errors import ConfigError
from bot.secrets import SecretRef, blank_secret

SlackPrincipal = Annotated[str, StringConstraints(pattern=r"^[US][A-Z0-9]{2,20}$")]
SlackChannel = Annotated[str, StringConstraints(pattern=r"^[CGD][A-Z0-9]{2,20}$")]
SlackWorkspace = Annotated[str, StringConstraints(pattern=r"^[TE][A-Z0-9]{2,20}$")]


def _fqdn(value: str) -> str:
    name = normalize_dns_name(value.strip())
    expected = dns_name_problem(name)
    if expected is not None or "." not in name:
        raise ValueError(f"{value!r} is not a DNS name such as dc1.corp.example.com")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSection(_Strict):
    """Where incidents go and who may act on them."""

    channel: SlackChannel = Field(description="channel ID where incident messages are posted")
    alert_channels: list[SlackChannel] = Field(
        default_factory=list,
        description="channels where other integrations post 1411 events to pick up",
    )
    responders: list[SlackPrincipal] = Field(
        default_factory=list, description="user (U...) or user-group (S...) IDs who may run steps"
    )
    approvers: list[SlackPrincipal] = Field(
        default_factory=list, description="user or user-group IDs who may approve risky steps"
    )
    workspaces: list[SlackWorkspace] = Field(
        default_factory=list,
        description="team (T...) or Enterprise Grid (E...) IDs whose requests are accepted; "
        "empty = only the workspace of the bot token (auth.test)",
    )


class AlertsSection(_Strict):
    """Alert intake settings."""

    coalesce_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="at most one incident-message update per N s"
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, le=16 * 1_048_576)
    hmac_secret: SecretRef | None = Field(
        default=None, description="accept X-AD1411-Signature: v1=<hmac of body> with this key"
    )
    max_new_incidents_per_request: int = Field(
        default=20, gt=0, le=10_000, description="new incidents one request may open"
    )
    max_new_incidents_per_minute: int = Field(
        default=60,
        gt=0,
        le=100_000,
        description="new incidents all replicas together may open per minute; "
        "beyond either cap, alerts are grouped into one 'alert flood' message",
    )
    token_in_url: bool = Field(
        default=False,
        description="also accept ALERT_WEBHOOK_TOKEN as ?token= (senders that cannot set a "
        "header: Splunk's and Azure Monitor's webhooks); TLS only",
    )


class ServeSection(_Strict):
    """Limits of the HTTP side of `ad1411 serve`."""

    body_read_seconds: float = Field(
        default=10.0, gt=0, le=300, description="a request body must arrive within this"
    )
    max_concurrent_uploads: int = Field(
        default=64, gt=0, le=10_000, description="request bodies read at once per route"
    )
    shutdown_seconds: float = Field(
        default=10.0, gt=0, le=300, description="SIGTERM: pending work gets this long"
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="uvloop's (less CPU per request) or asyncio's own"
    )


class ApprovalsSection(_Strict):
    """How many distinct approvers each step kind needs, and how long an approval lives."""

    ttl_seconds: int = Field(default=900, gt=0, le=86_400)
    change: int = Field(default=1, ge=0, le=5)
    temporary: int = Field(default=1, ge=0, le=5)
    disruptive: int = Field(default=2, ge=0, le=5)
    obligation_deadline_seconds: int = Field(default=3600, gt=0, le=7 * 86_400)


class ProcedureSection(_Strict):
    """How the guided KB938704 procedure behaves."""

    diagnosis_max_age_seconds: int = Field(
        default=900, gt=0, le=86_400, description="plan only from a diagnosis this fresh"
    )
    message_update_seconds: float = Field(
        default=1.0, gt=0, le=300, description="at most one procedure-message update per N s"
    )
    sweep_seconds: float = Field(
        default=5.0, gt=0, le=600, description="how often the worker repairs stale messages"
    )
    lock_wait_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="how long a step waits for its DC's lock"
    )
    step_deadline_seconds: float = Field(
        default=1800.0, gt=0, le=86_400, description="a step run fails after this long"
    )


class WorkerSection(_Strict):
    """Deadlines and liveness of `ad1411 worker`."""

    diagnosis_deadline_seconds: float = Field(
        default=180.0, gt=0, le=3600, description="a diagnosis job fails after this long"
    )
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often a worker says it is alive"
    )
    heartbeat_stale_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="a worker silent this long counts as dead"
    )
    reclaim_idle_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="a job held this long by a dead worker moves"
    )
    shutdown_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="SIGTERM: the job in progress gets this long, then stays queued for another",
    )


class LdapSection(_Strict):
    """How to reach and bind to the forest's directory."""

    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["ldaps", "starttls", "none"] = "ldaps"
    ca_file: Path | None = None
    validate_certificates: bool = True
    auth: Literal["simple", "ntlm", "kerberos"] = "simple"
    user: str | None = None
    password: SecretRef | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


_REALM = r"^[A-Z0-9](?:[A-Z0-9-]{0,62})(?:\.[A-Z0-9](?:[A-Z0-9-]{0,62}))*$"
_KDC = r"^[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?$"


class KerberosSection(_Strict):
    """The bot's own Kerberos identity in a forest: tickets from a keytab or a password."""

    realm: Annotated[str, StringConstraints(pattern=_REALM)] = Field(
        description="the realm in capitals, e.g. CORP.EXAMPLE.COM"
    )
    principal: str = Field(description="the bot's account, e.g. svc-ad1411@CORP.EXAMPLE.COM")
    keytab: SecretRef | None = Field(default=None, description='{ file = "/path/svc.keytab" }')
    password: SecretRef | None = None
    kdcs: list[Annotated[str, StringConstraints(pattern=_KDC)]] = Field(
        default_factory=list,
        description="KDC host or host:port; empty: found in DNS (_kerberos._tcp SRV records)",
    )
    krb5_conf: Path | None = Field(
        default=None, description="use this krb5.conf instead of the one the bot writes"
    )
    renew_before_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="get a new ticket when less is left"
    )
    ticket_lifetime_seconds: int | None = Field(default=None, ge=300, le=7 * 86_400)

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        name, _, realm = value.strip().partition("@")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._$/-]{0,255}", name) or (
            realm and not re.fullmatch(_REALM, realm)
        ):
            raise ValueError(
                f"{value!r} is not a principal such as svc-ad1411@CORP.EXAMPLE.COM "
                "(account name, then @ and the realm in capitals)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _one_secret(self) -> KerberosSection:
        if (self.keytab is None) == (self.password is None):
            raise ValueError(
                "give exactly one of keytab = { file = ... } or password = { env|file = ... }"
            )
        if self.keytab is not None and self.keytab.file is None:
            raise ValueError('keytab: a keytab is a binary file: give { file = "/path" }')
        return self

    @property
    def client_principal(self) -> str:
        """The principal with its realm (the realm is added when the config left it out)."""
        return self.principal if "@" in self.principal else f"{self.principal}@{self.realm}"


class WinrmSection(_Strict):
    """How to reach the DCs over WinRM."""

    scheme: Literal["https", "http"] = "https"
    port: int = Field(default=5986, ge=1, le=65535)
    auth: Literal["negotiate", "kerberos", "ntlm", "credssp", "basic"] = "negotiate"
    user: str | None = None
    password: SecretRef | None = None
    ca_file: Path | None = None
    validate_certificates: bool = True
    encryption: Literal["auto", "always", "never"] = "auto"
    kerberos_service: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,31}$")] = (
        Field(default="host", description="SPN service of the DCs' WinRM: host, HTTP or WSMAN")
    )
    operation_timeout_seconds: int = Field(default=20, gt=0, le=3600)
    command_deadline_seconds: float = Field(default=120.0, gt=0, le=7200)
    restart_deadline_seconds: float = Field(default=900.0, gt=0, le=7200)


class DcOverride(_Strict):
    """Per-DC address overrides (labs, split DNS)."""

    fqdn: str
    address: str | None = None
    winrm_address: str | None = Field(
        default=None, description="where WinRM answers when it differs from `address`"
    )
    ldap_port: int | None = Field(default=None, ge=1, le=65535)
    winrm_port: int | None = Field(default=None, ge=1, le=65535)

    _norm = field_validator("fqdn")(_fqdn)


class ForestSection(_Strict):
    """One Active Directory forest the bot may act on."""

    name: str = Field(description="forest root DNS name, e.g. corp.example.com")
    ldap_hosts: list[str] = Field(min_length=1, description="DC FQDNs to query over LDAP")
    ldap: LdapSection = Field(default_factory=LdapSection)
    winrm: WinrmSection = Field(default_factory=WinrmSection)
    dcs: list[DcOverride] = Field(default_factory=list)
    kerberos: KerberosSection | None = None

    _norm_name = field_validator("name")(_fqdn)

    @model_validator(mode="after")
    def _kerberos_when_used(self) -> ForestSection:
        if self.kerberos is None and "kerberos" in (self.ldap.auth, self.winrm.auth):
            raise ValueError(
                "auth = kerberos needs a [forests.kerberos] section: realm, principal, and "
                "keytab = { file = ... } or password"
            )
        if self.ldap.auth == "kerberos" and (self.ldap.user or self.ldap.password):
            raise ValueError(
                "ldap.user and ldap.password are not used with ldap.auth = kerberos (the bot "
                "binds as kerberos.principal): remove them"
            )
        return self

    @field_validator("ldap_hosts")
    @classmethod
    def _norm_hosts(cls, value: list[str]) -> list[str]:
        return [_fqdn(v) for v in value]

    def override_for(self, fqdn: str) -> DcOverride | None:
        """The address override of one DC, if configured."""
        return next((d for d in self.dcs if d.fqdn == fqdn), None)


class FileConfig(_Strict):
    """The TOML file named by AD1411_CONFIG."""

    slack: SlackSection
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    approvals: ApprovalsSection = Field(default_factory=ApprovalsSection)
    worker: WorkerSection = Field(default_factory=WorkerSection)
    procedure: ProcedureSection = Field(default_factory=ProcedureSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    forests: list[ForestSection] = Field(default_factory=list)

    def forest(self, name: str) -> ForestSection | None:
        """The configured forest with this DNS name."""
        return next((f for f in self.forests if f.name == name.lower()), None)


class EnvSettings(BaseSettings):
    """Settings from the environment (DESIGN.md section 5)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True)

    SLACK_BOT_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: SecretStr | None = None
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_API_URL: str = "https://slack.com/api/"
    REDIS_URL: str | None = None
    AD1411_CONFIG: Path | None = None
    AD1411_DATA_DIR: Path = Path("var")
    ALERT_WEBHOOK_TOKEN: SecretStr | None = None
    PORT: int = Field(default=3000, ge=0, le=65535)
    HOST: str = "127.0.0.1"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "ALERT_WEBHOOK_TOKEN"
    )
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty secret would equal an empty credential: refuse it instead of opening a door.
        if value is not None and blank_secret(value.get_secret_value()):
            raise ValueError(
                "is set but empty or only whitespace; give the real secret, or unset the variable"
            )
        return value

    @field_validator("SLACK_API_URL")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"


class Settings(BaseModel):
    """Everything the processes need, validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    env: EnvSettings
    file: FileConfig


def _format_errors(source: str, err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (found {got!r})"
        problems.append(f"{source}{loc}: {e['msg']}{shown}")
    return problems


def load_file_config(path: Path) -> FileConfig:
    """Parse and validate a TOML config file; ConfigError lists every problem with its key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"AD1411_CONFIG: file {path} does not exist"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    try:
        return FileConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(f"{path}: ", exc)) from None


def _secret_problem(key: str, ref: SecretRef) -> str | None:
    try:
        value = ref.resolve()
    except (KeyError, OSError, UnicodeDecodeError) as exc:
        return f"{key}: secret {ref.describe()} cannot be read: {exc}"
    if blank_secret(value):
        return (
            f"{key}: secret {ref.describe()} is empty or only whitespace; an empty key would "
            "accept requests signed with an empty key. Put the real secret there, or remove the key"
        )
    return None


def check_secrets(cfg: FileConfig) -> list[str]:
    """Secret references that cannot be resolved now or resolve to nothing (never values)."""
    refs: list[tuple[str, SecretRef | None]] = [("alerts.hmac_secret", cfg.alerts.hmac_secret)]
    problems: list[str] = []
    for i, forest in enumerate(cfg.forests):
        refs.append((f"forests.{i}.ldap.password", forest.ldap.password))
        refs.append((f"forests.{i}.winrm.password", forest.winrm.password))
        if forest.kerberos is not None:
            refs.append((f"forests.{i}.kerberos.password", forest.kerberos.password))
            problems.extend(_keytab_problems(f"forests.{i}.kerberos.keytab", forest.kerberos))
    found = (_secret_problem(key, ref) for key, ref in refs if ref is not None)
    return [p for p in found if p is not None] + problems


def check_serve_secrets(cfg: FileConfig) -> None:
    """The secrets `serve` itself uses (the alert HMAC key); ConfigError when one is unusable."""
    ref = cfg.alerts.hmac_secret
    problem = _secret_problem("alerts.hmac_secret", ref) if ref is not None else None
    if problem is not None:
        raise ConfigError([problem])


def _keytab_problems(key: str, section: KerberosSection) -> list[str]:
    """A keytab reference must name a readable file (it is binary: never read as text)."""
    path = section.keytab.file if section.keytab is not None else None
    if path is None:
        return []
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return [f"{key}: keytab {path} cannot be read: {exc.strerror or exc}"]
    return []


def load_env() -> EnvSettings:
    """Read the environment; ConfigError names each bad variable."""
    try:
        return EnvSettings()
    except ValidationError as exc:
        raise ConfigError(_format_errors("environment ", exc)) from None


def load_settings(*, require_slack: bool = True) -> Settings:
    """Environment plus config file, with every problem reported at once."""
    env = load_env()
    problems: list[str] = []
    if require_slack:
        if env.SLACK_BOT_TOKEN is None:
            problems.append("SLACK_BOT_TOKEN: not set; expected the bot token (xoxb-...)")
        if env.SLACK_SIGNING_SECRET is None and env.SLACK_APP_TOKEN is None:
            problems.append(
                "SLACK_SIGNING_SECRET: not set; expected the app's signing secret "
                "(or set SLACK_APP_TOKEN for Socket Mode)"
            )
    file_cfg: FileConfig | None = None
    path = env.AD1411_CONFIG
    if path is None:
        problems.append("AD1411_CONFIG: not set; expected the path of the TOML config file")
    else:
        try:
            file_cfg = load_file_config(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems or file_cfg is None:
        raise ConfigError(problems)
    return Settings(env=env, file=file_cfg)
