"""The service's one validated settings object, read from environment variables (prefix ``IGG4_CDS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a deployment can configure. Defaults give a working local service with no set-up."""

    model_config = SettingsConfigDict(env_prefix="IGG4_CDS_", env_file=None, extra="ignore")

    # Clinical parameters (CLINICAL_SPEC section 4).
    lookback_years: PositiveFloat = Field(
        3.0, description="Lookback window for laboratory results, in years."
    )
    default_igg4_uln_g_per_l: PositiveFloat = Field(
        1.35, description="Serum IgG4 upper limit used when the lab gives none; the card discloses it."
    )

    # Web edge.
    host: str = "127.0.0.1"
    port: PositiveInt = 8080
    public_base_url: str | None = Field(
        None, description="External base URL of the service (for JWT `aud` behind a proxy)."
    )
    max_body_bytes: PositiveInt = Field(5 * 1024 * 1024, description="Largest hook request accepted.")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    log_level: str = "INFO"

    # Live data (fallback fetching from the EHR's FHIR server).
    hook_time_budget_s: PositiveFloat = Field(2.5, description="Time budget of one hook call, in seconds.")
    allowed_fhir_bases: list[str] = Field(
        default_factory=list, description="FHIR base URLs or URL prefixes the service may fetch from."
    )
    max_fhir_pages: PositiveInt = Field(5, description="Most `next` pages followed for one query.")

    # Trust and storage.
    dev_mode: bool = Field(False, description="Local development mode: unauthenticated calls, loopback FHIR.")
    trust_file: Path | None = Field(None, description="Path of the trust configuration (issuers and keys).")
    redis_url: str | None = None
    database_url: str = Field(
        "sqlite:///igg4rd-cds-feedback.sqlite3",
        description="SQLAlchemy URL of the feedback store (SQLite file by default, created on first use).",
    )
    feedback_hash_key: SecretStr | None = Field(
        None, description="HMAC key for patient references in the feedback store (required beyond SQLite)."
    )
    jwt_leeway_s: PositiveInt = Field(60, description="Clock skew tolerated on JWT exp/iat, in seconds.")

    # Development.
    fixtures_dir: Path | None = Field(
        None,
        description="Fixture directory for the preview and the demos (default: the checkout's fhir_fixtures).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
