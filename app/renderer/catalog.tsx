/** The storefront: a searchable, filterable grid of titles, and each title's page. */
import { useMemo, useState } from 'react';
import type { CatalogItem } from '../../shared/protocol.ts';
import { money, runtime } from './format.ts';
import { OrderForm } from './order-form.tsx';
import { go, useStoreState } from './use-store.ts';

export function Poster({
  item,
  className = 'poster',
}: {
  item: Pick<CatalogItem, 'posterUrl' | 'title'>;
  className?: string;
}) {
  return item.posterUrl ? (
    <img className={className} src={`..${item.posterUrl}`} alt={`Poster of ${item.title}`} loading="lazy" />
  ) : (
    <div className={`${className} poster-blank`}>{item.title}</div>
  );
}

export function Catalog() {
  const { catalog } = useStoreState();
  const [query, setQuery] = useState('');
  const [genre, setGenre] = useState('');
  const genres = useMemo(() => [...new Set(catalog.map((i) => i.genre))].sort(), [catalog]);
  const q = query.trim().toLowerCase();
  const shown = catalog.filter(
    (i) =>
      (!genre || i.genre === genre) &&
      (!q ||
        i.title.toLowerCase().includes(q) ||
        i.synopsis.toLowerCase().includes(q) ||
        String(i.itemNumber) === q),
  );
  return (
    <main>
      <div className="toolbar">
        <h1>Films</h1>
        <input
          type="search"
          placeholder="Search titles"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          aria-label="Search titles"
          data-testid="search"
        />
        <select
          value={genre}
          onChange={(e) => setGenre(e.target.value)}
          aria-label="Genre"
          data-testid="genre-filter"
        >
          <option value="">All genres</option>
          {genres.map((g) => (
            <option key={g}>{g}</option>
          ))}
        </select>
      </div>
      {shown.length === 0 ? (
        <p className="empty" data-testid="no-results">
          {catalog.length ? 'No titles match your search.' : 'The catalog is empty.'}
        </p>
      ) : (
        <ul className="grid" data-testid="catalog-grid">
          {shown.map((i) => (
            <li key={i.itemNumber}>
              <a className="tile" href={`#/title/${i.itemNumber}`} data-testid={`title-${i.itemNumber}`}>
                <Poster item={i} />
                <strong>{i.title}</strong>
                <span className="muted">
                  {i.genre} · {runtime(i.durationSeconds)}
                </span>
                <span className="price">Rent {money(i.priceCents)}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}

export function TitlePage({ itemNumber }: { itemNumber: number }) {
  const { catalog } = useStoreState();
  const item = catalog.find((i) => i.itemNumber === itemNumber);
  if (!item) {
    return (
      <main>
        <p className="empty">
          No title with item number {itemNumber}. <a href="#/">Back to films</a>
        </p>
      </main>
    );
  }
  return (
    <main className="title-page" data-testid="title-page">
      <button type="button" className="link back" onClick={() => go('#/')}>
        ← All films
      </button>
      <div className="title-layout">
        <Poster item={item} className="poster large" />
        <section>
          <h1>{item.title}</h1>
          <p className="muted">
            {[item.year, item.genre, runtime(item.durationSeconds), `item ${item.itemNumber}`]
              .filter(Boolean)
              .join(' · ')}
          </p>
          <p className="synopsis">{item.synopsis}</p>
          <OrderForm item={item} />
        </section>
      </div>
    </main>
  );
}
