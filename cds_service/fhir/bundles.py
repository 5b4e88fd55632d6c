"""Reading searchset Bundle pages leniently: their links, entries, entry identities and ``next`` link."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def bundle_links(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Bundle's ``link`` objects (anything else in ``link`` is skipped)."""
    links = bundle.get("link")
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def bundle_entries(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Bundle's ``entry`` objects (anything else in ``entry`` is skipped)."""
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def entry_identity(entry: Mapping[str, Any]) -> str | None:
    """What makes an entry the same across pages: its fullUrl, else resourceType/id; None when neither."""
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str) and full_url:
        return full_url
    resource = entry.get("resource")
    if isinstance(resource, Mapping):
        kind, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(kind, str) and isinstance(rid, str):
            return f"{kind}/{rid}"
    return None


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The URL of the Bundle's first non-empty ``next`` link, or None."""
    for link in bundle_links(bundle):
        url = link.get("url")
        if link.get("relation") == "next" and isinstance(url, str) and url:
            return url
    return None
