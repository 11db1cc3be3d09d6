// Which rows of a long table are in the DOM: the ones in view plus a few either side. With rows
// of one height, the rest is two spacers, so 5,000 rows cost what 40 do.

export interface WindowInput {
  scrollTop: number;
  viewportHeight: number;
  rowHeight: number;
  rowCount: number;
  /** Rows rendered beyond each edge of the view, so a short scroll shows no blank. */
  overscan?: number;
}

export interface RowWindow {
  /** First row rendered (inclusive). */
  start: number;
  /** Row after the last rendered (exclusive). */
  end: number;
  /** Height of the spacer above the rendered rows, in px. */
  padTop: number;
  /** Height of the spacer below them. */
  padBottom: number;
}

export function rowWindow({ scrollTop, viewportHeight, rowHeight, rowCount, overscan = 8 }: WindowInput): RowWindow {
  if (rowCount <= 0 || rowHeight <= 0) return { start: 0, end: 0, padTop: 0, padBottom: 0 };
  const top = Math.max(0, scrollTop);
  const firstVisible = Math.min(rowCount - 1, Math.floor(top / rowHeight));
  const visibleCount = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, firstVisible - overscan);
  const end = Math.min(rowCount, firstVisible + visibleCount + overscan);
  return { start, end, padTop: start * rowHeight, padBottom: (rowCount - end) * rowHeight };
}

/** The scrollTop that brings row `index` into view (unchanged when it already is). */
export function scrollToRow(index: number, scrollTop: number, viewportHeight: number, rowHeight: number): number {
  const top = index * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewportHeight) return top + rowHeight - viewportHeight;
  return scrollTop;
}
