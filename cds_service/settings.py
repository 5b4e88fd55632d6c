"""The service's one validated settings object, read from environment variables (prefix ``IGG4_CDS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, field_validator
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
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed by CORS; none by default ('*' when empty in development mode only).",
    )
    log_level: str = "INFO"

    # Live data (fallback fetching from the EHR's FHIR server).
    hook_time_budget_s: PositiveFloat = Field(
        2.5,
        description="Time budget for gathering a hook call's data (prefetch and FHIR fetching), in seconds.",
    )
    evaluation_time_budget_s: PositiveFloat = Field(
        2.0,
        description="Time budget for reading the data of one hook call; what is not read in time is reported"
        " as incomplete data.",
    )
    allowed_fhir_bases: list[str] = Field(
        default_factory=list, description="FHIR base URLs or URL prefixes the service may fetch from."
    )
    max_fhir_pages: PositiveInt = Field(5, description="Most `next` pages followed for one query.")
    max_fhir_response_bytes: PositiveInt = Field(
        5 * 1024 * 1024,
        description="Most bytes read for one FHIR query (all its pages, counted after decompression).",
    )
    fhir_workers_per_server: PositiveInt = Field(
        8, description="Concurrent FHIR requests per FHIR server (origin); each server has its own pool."
    )

    # Trust and storage.
    dev_mode: bool = Field(False, description="Local development mode: unauthenticated calls, loopback FHIR.")
    trust_file: Path | None = Field(None, description="Path of the trust configuration (issuers and keys).")
    redis_url: str | None = Field(
        None, description="Redis for replay protection shared by several hosts (overrides replay_db_file)."
    )
    replay_db_file: Path | None = Field(
        Path("igg4rd-cds-replay.sqlite3"),
        description="SQLite file of seen JWT ids, shared by the workers of one host and kept over restarts;"
        " empty: per process (one worker only).",
    )
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

    @field_validator("replay_db_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
