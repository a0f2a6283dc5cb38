"""The outcome of one health check of an installation (what ``secureflow doctor`` prints): its name,
whether it passed, what was found and how to fix it. Details name settings, addresses and counts only,
never keys, data or secrets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

CheckStatus = Literal["ok", "warn", "fail", "skip"]
"""``warn`` and ``skip`` do not fail the doctor; ``fail`` does."""


class Check(BaseModel):
    """One check and its result."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: CheckStatus
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def passed(name: str, detail: str) -> Check:
    return Check(name=name, status="ok", detail=detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="fail", detail=detail, fix=fix)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="warn", detail=detail, fix=fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name=name, status="skip", detail=detail)
