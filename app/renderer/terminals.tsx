/** A customer's terminals: link one by the code it shows, rename, unlink. */
import { type FormEvent, useState } from 'react';
import { LIMITS } from '../../shared/limits.ts';
import type { TerminalView } from '../../shared/protocol.ts';
import { when } from './format.ts';
import { useAction, useSession, useStoreState } from './use-store.ts';

const KIND_LABEL: Record<TerminalView['kind'], string> = {
  headless: 'Set-top (headless)',
  desktop: 'Desktop player',
  'set-top': 'Set-top player',
  browser: 'Browser player',
};

function LinkForm() {
  const session = useSession();
  const [code, setCode] = useState('');
  const [name, setName] = useState('');
  const [linked, setLinked] = useState<string | null>(null);
  const { busy, error, setError, run } = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const clean = code.trim().toUpperCase();
    if (!/^[A-HJ-NP-Z2-9]{4}-?[A-HJ-NP-Z2-9]{4}$/.test(clean)) {
      return setError('a pairing code has 8 letters and digits, like ABCD-2345; it is shown on the terminal');
    }
    void run(async () => {
      const t = await session.linkTerminal(clean, name.trim() || 'My terminal');
      setLinked(t.name);
      setCode('');
      setName('');
    });
  };
  return (
    <form className="card link-form" onSubmit={submit} noValidate data-testid="link-form">
      <h2>Link a terminal</h2>
      <p className="muted">
        Start the player on your TV box or computer. It shows a pairing code: type it here.
      </p>
      <div className="inline">
        <label>
          Pairing code
          <input
            value={code}
            onChange={(e) => setCode(e.target.value)}
            placeholder="ABCD-2345"
            autoCapitalize="characters"
            spellCheck={false}
            maxLength={9}
            data-testid="pairing-code"
          />
        </label>
        <label>
          Name it
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="Living room"
            maxLength={64}
            data-testid="terminal-name"
          />
        </label>
        <button type="submit" className="primary" disabled={busy} data-testid="link-submit">
          {busy ? 'Linking…' : 'Link'}
        </button>
      </div>
      {error && (
        <p className="error" role="alert" data-testid="link-error">
          {error}
        </p>
      )}
      {linked && !error && (
        <p className="ok" data-testid="link-ok">
          “{linked}” is linked. You can now rent films for it.
        </p>
      )}
    </form>
  );
}

function TerminalRow({ t }: { t: TerminalView }) {
  const session = useSession();
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [name, setName] = useState(t.name);
  const { busy, error, run } = useAction();
  return (
    <li className="card terminal" data-testid={`terminal-${t.terminalId}`}>
      <div className="terminal-head">
        <span className={`dot ${t.online ? 'on' : 'off'}`} aria-hidden />
        {editing ? (
          <form
            className="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await session.renameTerminal(t.terminalId, name.trim());
                setEditing(false);
              });
            }}
          >
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              maxLength={64}
              aria-label="Terminal name"
              data-testid="rename-input"
            />
            <button
              type="submit"
              className="primary"
              disabled={busy || !name.trim()}
              data-testid="rename-save"
            >
              Save
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <strong data-testid="terminal-label">{t.name}</strong>
        )}
        <span className="muted">
          {t.online ? 'online' : t.lastSeenAt ? `offline · last seen ${when(t.lastSeenAt)}` : 'offline'}
        </span>
      </div>
      <p className="muted small">
        {KIND_LABEL[t.kind]} · address {t.terminalId.slice(0, 8)}…
        {t.linkedAt ? ` · linked ${when(t.linkedAt)}` : ''}
      </p>
      {!editing && !confirming && (
        <div className="inline">
          <button type="button" onClick={() => setEditing(true)} data-testid="rename">
            Rename
          </button>
          <button type="button" className="danger" onClick={() => setConfirming(true)} data-testid="unlink">
            Unlink
          </button>
        </div>
      )}
      {confirming && (
        <div className="inline confirm">
          <span>Unlink “{t.name}”? You can link it again with a new code.</span>
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={() => void run(() => session.unlinkTerminal(t.terminalId))}
            data-testid="unlink-confirm"
          >
            Unlink
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Keep
          </button>
        </div>
      )}
      {error && <p className="error">{error}</p>}
    </li>
  );
}

export function Terminals() {
  const { terminals } = useStoreState();
  return (
    <main>
      <h1>Terminals</h1>
      <LinkForm />
      <p className="muted" data-testid="terminal-count">
        {terminals.length} of {LIMITS.terminalsPerCustomer} terminals linked.
      </p>
      <ul className="terminals">
        {terminals.map((t) => (
          <TerminalRow key={t.terminalId} t={t} />
        ))}
      </ul>
    </main>
  );
}
