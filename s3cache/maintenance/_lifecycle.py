"""The bucket lifecycle rule that reclaims a cache prefix's storage after whole days."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from s3cache._core import AsyncS3Cache
from s3cache.maintenance._purge import check_scope

__all__ = [
    "LifecycleRule",
    "lifecycle_remove",
    "lifecycle_rule_id",
    "lifecycle_rules",
    "lifecycle_set",
]

_RULE_ID_MAX: Final = 255


@dataclass(frozen=True, slots=True)
class LifecycleRule:
    """A bucket lifecycle rule that reaches objects under the cache prefix."""

    id: str
    prefix: str
    status: str
    days: int | None  #: ``Expiration.Days``; None for other kinds of rule
    covers: Literal["all", "some"]  #: all entries under the prefix, or only some
    ours: bool  #: the rule ``lifecycle_set`` manages for this prefix
    filtered: bool  #: the rule also filters on tags or sizes

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def lifecycle_rule_id(prefix: str) -> str:
    """The ID of the rule :func:`lifecycle_set` manages for ``prefix`` (at most 255 chars)."""
    rule_id = f"s3cache:{prefix}"
    if len(rule_id) <= _RULE_ID_MAX:
        return rule_id
    return "s3cache:" + hashlib.sha256(prefix.encode()).hexdigest()


def _rule_prefix(rule: Mapping[str, Any]) -> tuple[str, bool]:
    """A rule's key prefix and whether it filters on anything more (tags, sizes)."""
    if "Filter" not in rule:
        return str(rule.get("Prefix") or ""), False
    flt: Mapping[str, Any] = rule.get("Filter") or {}
    if "And" in flt:
        both: Mapping[str, Any] = flt["And"] or {}
        return str(both.get("Prefix") or ""), set(both) != {"Prefix"}
    return str(flt.get("Prefix") or ""), bool(set(flt) - {"Prefix"})


def _reach(rule_prefix: str, filtered: bool, prefix: str) -> Literal["all", "some"] | None:
    """How much of ``prefix`` a rule on ``rule_prefix`` covers (None: nothing)."""
    if prefix.startswith(rule_prefix):
        return "some" if filtered else "all"
    if rule_prefix.startswith(prefix):
        return "some"
    return None


async def lifecycle_rules(cache: AsyncS3Cache) -> list[LifecycleRule]:
    """The bucket's lifecycle rules that reach objects under the cache prefix."""
    found = []
    ours = lifecycle_rule_id(cache.prefix)
    for rule in await cache.transport.admin.get_lifecycle_rules():
        prefix, filtered = _rule_prefix(rule)
        covers = _reach(prefix, filtered, cache.prefix)
        if covers is None:
            continue
        days = (rule.get("Expiration") or {}).get("Days")
        found.append(
            LifecycleRule(
                id=str(rule.get("ID") or ""),
                prefix=prefix,
                status=str(rule.get("Status") or ""),
                days=int(days) if days is not None else None,
                covers=covers,
                ours=rule.get("ID") == ours,
                filtered=filtered,
            )
        )
    return found


async def lifecycle_set(cache: AsyncS3Cache, days: int, *, all_bucket: bool = False) -> str:
    """Add or replace the rule expiring objects under the prefix ``days`` days after writing.

    Other rules of the bucket are kept (S3 replaces the whole configuration on every put, so
    this reads, edits and writes it back). Returns the rule's ID.
    """
    if isinstance(days, bool) or not isinstance(days, int):
        raise TypeError(f"days must be an int, not {type(days).__name__}")
    if days < 1:
        raise ValueError(f"days must be at least 1 (lifecycle rules act in whole days), not {days}")
    check_scope(cache, all_bucket, "set a lifecycle rule")
    rule_id = lifecycle_rule_id(cache.prefix)
    rules = [r for r in await cache.transport.admin.get_lifecycle_rules() if r.get("ID") != rule_id]
    rules.append(
        {
            "ID": rule_id,
            "Filter": {"Prefix": cache.prefix},
            "Status": "Enabled",
            "Expiration": {"Days": days},
        }
    )
    await cache.transport.admin.put_lifecycle_rules(rules)
    return rule_id


async def lifecycle_remove(cache: AsyncS3Cache) -> bool:
    """Remove the rule :func:`lifecycle_set` manages for this prefix; False when there is none."""
    rule_id = lifecycle_rule_id(cache.prefix)
    rules = await cache.transport.admin.get_lifecycle_rules()
    kept = [r for r in rules if r.get("ID") != rule_id]
    if len(kept) == len(rules):
        return False
    if kept:
        await cache.transport.admin.put_lifecycle_rules(kept)
    else:
        await cache.transport.admin.delete_lifecycle()
    return True
