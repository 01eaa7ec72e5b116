/**
 * Renting a title: period (presets or custom), the destination terminal (one of the customer's own,
 * with its online state), and when content and key go out. The window the server will create is
 * shown before confirming; every field is checked here and again on the server.
 */
import { type FormEvent, useEffect, useState } from 'react';
import type { CatalogItem } from '../../shared/protocol.ts';
import { money, span, when } from './format.ts';
import {
  type OrderDraft,
  PERIOD_PRESETS,
  type ScheduleMode,
  toLocalInput,
  type Unit,
  validateDraft,
} from './order-draft.ts';
import { go, useAction, useNow, useSession, useStoreState } from './use-store.ts';

export function OrderForm({ item }: { item: CatalogItem }) {
  const session = useSession();
  const { terminals } = useStoreState();
  const now = useNow(15_000);
  const [draft, setDraft] = useState<OrderDraft>(() => ({
    itemNumber: item.itemNumber,
    terminalId: terminals.find((t) => t.online)?.terminalId ?? terminals[0]?.terminalId ?? '',
    periodPreset: '48h',
    customAmount: '3',
    customUnit: 'hours',
    scheduleMode: 'now',
    scheduleAt: toLocalInput(Date.now() + 3600_000),
  }));
  const [touched, setTouched] = useState(false);
  const { busy, error, run } = useAction();
  const patch = (p: Partial<OrderDraft>) => setDraft((d) => ({ ...d, ...p }));
  // The terminal list can arrive after the form: pick one as soon as there is one.
  useEffect(() => {
    if (terminals.length && draft.terminalId === '') {
      const pick = (terminals.find((t) => t.online) ?? terminals[0])?.terminalId ?? '';
      setDraft((d) => ({ ...d, terminalId: pick }));
    }
  }, [terminals, draft.terminalId]);
  const result = validateDraft(draft, terminals, now);
  const errors = touched && !result.ok ? result.errors : {};

  if (terminals.length === 0) {
    return (
      <div className="card notice" data-testid="no-terminals">
        <p>To rent, first link a terminal: the TV box, player or computer where you will watch.</p>
        <button type="button" className="primary" onClick={() => go('#/terminals')}>
          Link a terminal
        </button>
      </div>
    );
  }

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    const r = validateDraft(draft, terminals, Date.now());
    if (!r.ok) return;
    void run(async () => {
      await session.placeOrder(r.request);
      go('#/rentals');
    });
  };

  return (
    <form className="card order" onSubmit={submit} noValidate data-testid="order-form">
      <h2>Rent for {money(item.priceCents)}</h2>

      <fieldset>
        <legend>Rental period</legend>
        <div className="choices">
          {PERIOD_PRESETS.map((p) => (
            <label key={p.id} className="choice">
              <input
                type="radio"
                name="period"
                checked={draft.periodPreset === p.id}
                onChange={() => patch({ periodPreset: p.id })}
              />
              {p.label}
            </label>
          ))}
          <label className="choice">
            <input
              type="radio"
              name="period"
              checked={draft.periodPreset === 'custom'}
              onChange={() => patch({ periodPreset: 'custom' })}
              data-testid="period-custom"
            />
            Custom
          </label>
        </div>
        {draft.periodPreset === 'custom' && (
          <div className="inline">
            <input
              type="number"
              min={1}
              value={draft.customAmount}
              onChange={(e) => patch({ customAmount: e.target.value })}
              aria-label="Custom period length"
              data-testid="period-amount"
            />
            <select
              value={draft.customUnit}
              onChange={(e) => patch({ customUnit: e.target.value as Unit })}
              aria-label="Custom period unit"
              data-testid="period-unit"
            >
              <option value="minutes">minutes</option>
              <option value="hours">hours</option>
              <option value="days">days</option>
            </select>
          </div>
        )}
        {errors.period && (
          <p className="error" data-testid="error-period">
            {errors.period}
          </p>
        )}
      </fieldset>

      <fieldset>
        <legend>Watch on</legend>
        <select
          value={draft.terminalId}
          onChange={(e) => patch({ terminalId: e.target.value })}
          data-testid="terminal-select"
        >
          {terminals.map((t) => (
            <option key={t.terminalId} value={t.terminalId}>
              {t.name} ({t.online ? 'online' : 'offline'})
            </option>
          ))}
        </select>
        {errors.terminal && (
          <p className="error" data-testid="error-terminal">
            {errors.terminal}
          </p>
        )}
      </fieldset>

      <fieldset>
        <legend>When</legend>
        {(
          [
            ['now', 'Deliver now', 'The film downloads now and your rental starts now.'],
            [
              'delivery-start',
              'Start the delivery later',
              'Pre-load at a quiet time; the rental starts then.',
            ],
            [
              'key-delivery',
              'Release the key at a set time',
              'The film downloads now; it unlocks at the time you choose.',
            ],
          ] as [ScheduleMode, string, string][]
        ).map(([mode, label, help]) => (
          <label key={mode} className="choice block">
            <input
              type="radio"
              name="schedule"
              checked={draft.scheduleMode === mode}
              onChange={() => patch({ scheduleMode: mode })}
              data-testid={`schedule-${mode}`}
            />
            <span>
              {label}
              <small className="muted">{help}</small>
            </span>
          </label>
        ))}
        {draft.scheduleMode !== 'now' && (
          <input
            type="datetime-local"
            value={draft.scheduleAt}
            onChange={(e) => patch({ scheduleAt: e.target.value })}
            aria-label="Scheduled date and time"
            data-testid="schedule-at"
          />
        )}
        {errors.schedule && (
          <p className="error" data-testid="error-schedule">
            {errors.schedule}
          </p>
        )}
      </fieldset>

      {result.ok && (
        <p className="summary" data-testid="order-summary">
          Watchable from{' '}
          <strong>{result.times.notBefore - now < 60_000 ? 'now' : when(result.times.notBefore)}</strong>{' '}
          until <strong>{when(result.times.notAfter)}</strong> (
          {span(result.times.notAfter - result.times.notBefore)}).
          {result.times.contentAt > now + 60_000 && <> Delivery starts {when(result.times.contentAt)}.</>}
        </p>
      )}
      {error && (
        <p className="error" role="alert" data-testid="order-error">
          {error}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy} data-testid="order-submit">
        {busy ? 'Ordering…' : `Rent for ${money(item.priceCents)}`}
      </button>
    </form>
  );
}
