// Sorts every table.sortable by the column whose header is clicked: numbers by value (a cell such as
// "0.737 ± 0.012 °" or "1=" sorts by its leading number), text alphabetically, and the missing values ("—", "n/a",
// empty) last in either direction. Clicking the same header again reverses the order; ties keep the board's order.
(function () {
  "use strict";
  const MISSING = new Set(["", "—", "n/a"]);
  const LEADING_NUMBER = /^[-+]?\d+(?:\.\d+)?(?![\w.\[])/;

  function text(row, column) {
    return row.cells[column].textContent.trim();
  }

  function number(value) {
    const match = LEADING_NUMBER.exec(value);
    return match ? parseFloat(match[0]) : NaN;
  }

  function sortBy(table, column, header) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const values = new Map(rows.map(row => [row, text(row, column)]));
    const present = rows.filter(row => !MISSING.has(values.get(row)));
    const numeric = present.length > 0 && present.every(row => !isNaN(number(values.get(row))));
    const direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    const compare = numeric ? (a, b) => number(a) - number(b) : (a, b) => a.localeCompare(b);
    rows.sort((a, b) => {
      const [x, y] = [values.get(a), values.get(b)];
      const missing = MISSING.has(x) - MISSING.has(y);
      if (missing) return missing;
      return (MISSING.has(x) ? 0 : direction * compare(x, y)) || a.dataset.order - b.dataset.order;
    });
    for (const cell of table.tHead.rows[0].cells) cell.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
    for (const row of rows) body.appendChild(row);
  }

  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tBodies[0].rows).forEach((row, order) => { row.dataset.order = order; });
    Array.from(table.tHead.rows[0].cells).forEach((header, column) => {
      header.querySelector("button").addEventListener("click", () => sortBy(table, column, header));
    });
  }
})();
