"""Seed files: spreadsheets, service accounts, API keys and quotas to start the emulator with (JSON or YAML).

```yaml
spreadsheets:
  - id: demo-people            # optional; a Google-like id otherwise
    title: People
    owner: robot@demo.iam.gserviceaccount.com   # optional
    readers: [reader@example.com]               # optional; also `writers`
    anyone_with_link: true                      # optional
    sheets:
      - title: Sheet1
        sheetId: 0               # optional
        rowCount: 1000           # optional, also columnCount
        rows: [[name, age], [Ada, 36], [Total, {formula: "=SUM(B2:B2)", value: 36}]]
service_accounts: [{email: robot@demo.iam.gserviceaccount.com, public_key_file: robot.pub.pem}]
api_keys: [local-key]
quotas: {read_per_user: 60, read_per_project: 300}
```
Text in `rows` is read as USER_ENTERED (numbers become numbers, `=...` formulas); JSON numbers and booleans stay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sheetstream.emulator.cells import SKIP, Cell, parse_input
from sheetstream.emulator.model import DEFAULT_COLS, DEFAULT_ROWS, Sheet
from sheetstream.emulator.state import EmulatorState


class SeedError(ValueError):
    """A seed file that cannot be loaded; the message says where."""


def read_seed(path: Path) -> dict[str, Any]:
    """Parse a seed file (.json, .yaml or .yml)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise SeedError(f"{path}: expected a mapping at the top level")
    return data


def _cell(raw: Any, where: str) -> Cell | None:
    if isinstance(raw, dict):
        if "formula" not in raw:
            raise SeedError(f"{where}: a cell object needs a 'formula' (and optionally a 'value')")
        return Cell(raw.get("value"), formula=str(raw["formula"]))
    try:
        cell = parse_input(raw, user_entered=True)
    except ValueError as exc:
        raise SeedError(f"{where}: {exc}") from exc
    return None if cell is SKIP else cell  # type: ignore[return-value]


def _sheet(spec: dict[str, Any], index: int, where: str) -> Sheet:
    rows = spec.get("rows") or []
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise SeedError(f"{where}.rows: expected a list of lists")
    width = max((len(r) for r in rows), default=0)
    sheet = Sheet(
        int(spec.get("sheetId", index)),
        str(spec.get("title") or f"Sheet{index + 1}"),
        row_count=int(spec.get("rowCount", max(DEFAULT_ROWS, len(rows)))),
        col_count=int(spec.get("columnCount", max(DEFAULT_COLS, width))),
    )
    for r, row in enumerate(rows):
        for c, raw in enumerate(row):
            sheet.set(r, c, _cell(raw, f"{where}.rows[{r}][{c}]"))
    return sheet


def load_seed(state: EmulatorState, data: dict[str, Any], *, base_dir: Path | None = None) -> list[str]:
    """Load a parsed seed into the state; the ids of the spreadsheets created."""
    created = []
    for i, book in enumerate(data.get("spreadsheets") or []):
        where = f"spreadsheets[{i}]"
        tabs = [_sheet(s, j, f"{where}.sheets[{j}]") for j, s in enumerate(book.get("sheets") or [])]
        if len({t.sheet_id for t in tabs}) != len(tabs):
            raise SeedError(f"{where}: two sheets share a sheetId")
        try:
            made = state.create_spreadsheet(
                str(book.get("title") or "Untitled spreadsheet"),
                owner=book.get("owner"),
                file_id=book.get("id"),
                sheets=tabs or None,
            )
        except ValueError as exc:
            raise SeedError(f"{where}: {exc}") from exc
        made.readers.update(book.get("readers") or [])
        made.writers.update(book.get("writers") or [])
        made.anyone_with_link = bool(book.get("anyone_with_link", False))
        created.append(made.id)
    for i, account in enumerate(data.get("service_accounts") or []):
        key = account.get("public_key_pem")
        if key is None and account.get("public_key_file"):
            key_path = Path(account["public_key_file"])
            key = (base_dir / key_path if base_dir and not key_path.is_absolute() else key_path).read_text()
        if not account.get("email") or not key:
            raise SeedError(f"service_accounts[{i}]: needs 'email' and 'public_key_pem' or 'public_key_file'")
        state.service_accounts[str(account["email"])] = str(key)
    state.api_keys.update(str(k) for k in data.get("api_keys") or [])
    if data.get("quotas"):
        try:
            state.quotas.configure(**data["quotas"])
        except (TypeError, ValueError) as exc:
            raise SeedError(f"quotas: {exc}") from exc
    return created
