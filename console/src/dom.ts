/** Small DOM helpers: every piece of data goes in as text, never as markup. */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page has no #${id}`);
  return e as T;
}

/** Replace the rows of a table body; an empty list shows `empty` in one row. */
export function rows(tbody: HTMLElement, list: Node[], empty: string, columns: number): void {
  tbody.replaceChildren(...(list.length ? list : [el('tr', { class: 'empty' }, el('td', { colspan: String(columns) }, empty))]));
}

export function age(ms: number): string {
  return ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}
