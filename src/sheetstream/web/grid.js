/**
 * A live grid for one tab that renders only the rows in view (virtual scrolling), so a 10,000-row tab costs
 * what 60 rows cost. Row 0 is the header, kept in view while scrolling. Each row has an identity that survives
 * inserts and deletes above it, so a changed cell flashes in the right row, an inserted row animates in and a
 * deleted one animates out, and rows scrolled out of view are never built.
 */

const OVERSCAN = 10; // rows built beyond the visible ones, so a fast scroll shows no blank band
const LEAVE_MS = 350; // how long a deleted row stays to animate out (matches style.css)

export class Grid {
  /** `viewport` scrolls; `sizer` inside it takes the full height; `table` (inside sizer) shows the rows. */
  constructor({ viewport, sizer, table }) {
    this.viewport = viewport;
    this.sizer = sizer;
    this.table = table;
    this.rowHeight = 26; // measured after the first render
    this.tab = null;
    this.ids = []; // identity of each row, parallel to tab.rows
    this.nextId = 1;
    this.width = 0; // widest row, in cells
    this.cache = new Map(); // row id -> its <tr>, for rows rendered last time and unchanged since
    this.flash = new Map(); // row id -> columns changed, until the row is next built
    this.entering = new Set(); // row ids inserted, until the row is next built
    this.leaving = []; // {tr, before}: deleted rows animating out, shown before the row id `before`
    this.frame = null;
    this.header = null; // {id, tr}: the header row, rebuilt only when row 0 changes
    this.head = document.createElement("thead");
    this.body = document.createElement("tbody");
    table.replaceChildren(this.head, this.body);
    viewport.addEventListener("scroll", () => this.schedule());
    window.addEventListener("resize", () => this.schedule());
  }

  /** Show a tab from scratch (a snapshot, or another tab picked): no animation. */
  show(tab) {
    this.tab = tab;
    this.ids = tab ? tab.rows.map(() => this.nextId++) : [];
    this.cache.clear();
    this.header = null;
    this.body.replaceChildren();
    this.flash.clear();
    this.entering.clear();
    this.leaving = [];
    this.width = widest(tab);
    this.viewport.scrollTop = 0;
    this.render();
  }

  /** The tab after a change: `ops` are the change's ops (all tabs); those of this tab drive the animations. */
  update(tab, ops) {
    if (!tab || !this.tab || tab.id !== this.tab.id) {
      this.show(tab);
      return;
    }
    for (const op of ops) {
      if (op.tab !== tab.id) continue;
      if (op.op === "set") {
        const id = this.ids[op.row];
        if (id === undefined) continue;
        if (!this.flash.has(id)) this.flash.set(id, new Set());
        this.flash.get(id).add(op.col);
        this.cache.delete(id);
        if (this.header?.id === id) this.header = null;
      } else if (op.op === "insert_rows") {
        const fresh = op.rows.map(() => this.nextId++);
        fresh.forEach((id) => this.entering.add(id));
        this.ids.splice(op.at, 0, ...fresh);
      } else if (op.op === "delete_rows") {
        const gone = this.ids.splice(op.at, op.count);
        this.leave(gone, this.ids[op.at] ?? null);
      } else if (op.op === "resize") {
        this.leave(this.ids.splice(op.rows), null);
        this.cache.clear(); // cells past `cols` are gone from rows still in view
        this.header = null;
      }
    }
    // The final trim of trailing empty rows, or anything the ops above did not account for.
    if (this.ids.length > tab.rows.length) this.leave(this.ids.splice(tab.rows.length), null);
    while (this.ids.length < tab.rows.length) this.ids.push(this.nextId++);
    const width = widest(tab);
    if (width !== this.width) {
      this.cache.clear();
      this.header = null;
    }
    this.width = width;
    this.tab = tab;
    this.render();
  }

  leave(ids, before) {
    for (const id of ids) {
      const tr = this.cache.get(id);
      this.cache.delete(id);
      this.flash.delete(id);
      if (!tr) continue; // not in view: nothing to animate
      tr.classList.add("row-out");
      const entry = { tr, before };
      this.leaving.push(entry);
      setTimeout(() => {
        this.leaving = this.leaving.filter((e) => e !== entry);
        tr.remove();
      }, LEAVE_MS);
    }
  }

  /** Render on the next animation frame (scroll events come faster than frames). */
  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => { this.frame = null; this.render(); });
  }

  /** Build the header and the rows in view; reuse the rows that did not change. */
  render() {
    const rows = this.tab?.rows ?? [];
    const height = this.rowHeight;
    this.sizer.style.height = `${rows.length * height}px`;
    this.table.style.setProperty("--cols", String(Math.max(this.width, 1)));
    if (rows.length === 0) {
      this.head.replaceChildren();
      this.body.replaceChildren();
      this.cache.clear();
      this.header = null;
      return;
    }
    const top = this.viewport.scrollTop;
    const first = Math.max(1, Math.floor(top / height) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + this.viewport.clientHeight) / height) + OVERSCAN);
    // Row i sits at i * height; the table starts one row above `first` because the header comes first.
    this.table.style.top = `${(first - 1) * height}px`;
    if (this.header?.id !== this.ids[0]) {
      this.header = { id: this.ids[0], tr: this.build(this.ids[0], rows[0], "th") };
      this.head.replaceChildren(this.header.tr);
    }
    const cache = new Map();
    const wanted = [];
    for (let i = first; i < last; i++) {
      const id = this.ids[i];
      const tr = this.cache.get(id) ?? this.build(id, rows[i], "td");
      cache.set(id, tr);
      wanted.push(tr);
    }
    for (const { tr, before } of this.leaving) {
      const at = before === null ? -1 : wanted.indexOf(cache.get(before));
      if (at >= 0) wanted.splice(at, 0, tr);
      else if (before === null && last === rows.length) wanted.push(tr);
    }
    this.cache = cache;
    this.place(wanted);
    this.measure();
  }

  /**
   * Make the body's rows `wanted`, in order, without moving a row that stays: re-inserting an element restarts
   * its CSS animations, so a row that flashed would flash again on every scroll.
   */
  place(wanted) {
    const keep = new Set(wanted);
    for (const tr of [...this.body.children]) if (!keep.has(tr)) tr.remove();
    let cursor = this.body.firstElementChild;
    for (const tr of wanted) {
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else this.body.insertBefore(tr, cursor);
    }
  }

  build(id, cells, tag) {
    const tr = document.createElement("tr");
    tr.dataset.row = String(id);
    const flashed = this.flash.get(id);
    for (let c = 0; c < this.width; c++) {
      const cell = document.createElement(tag);
      const value = cells[c];
      cell.textContent = value === undefined ? "" : String(value);
      if (flashed?.has(c)) cell.className = "flash";
      tr.append(cell);
    }
    this.flash.delete(id);
    if (this.entering.delete(id)) tr.className = "row-in";
    return tr;
  }

  measure() {
    const tr = this.body.querySelector("tr:not(.row-out)");
    const measured = tr?.getBoundingClientRect().height;
    if (measured && Math.abs(measured - this.rowHeight) > 0.5) {
      this.rowHeight = measured;
      this.schedule();
    }
  }
}

function widest(tab) {
  let width = 0;
  for (const row of tab?.rows ?? []) if (row.length > width) width = row.length;
  return width;
}
