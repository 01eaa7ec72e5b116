/** Sign up / sign in. Errors from the server (wrong password, taken e-mail) show under the form. */
import { type FormEvent, useState } from 'react';
import { AGE_BANDS, type AgeBand, REGIONS, type Region } from '../../shared/classification.ts';
import { useAction, useSession } from './use-store.ts';

export function SignIn() {
  const session = useSession();
  const [mode, setMode] = useState<'in' | 'up'>('in');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [name, setName] = useState('');
  const [ageBand, setAgeBand] = useState<AgeBand | ''>('');
  const [region, setRegion] = useState<Region | ''>('');
  const { busy, error, setError, run } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (mode === 'up' && password.length < 8) return setError('use at least 8 characters for your password');
    const about = { ...(ageBand ? { ageBand } : {}), ...(region ? { region } : {}) };
    void run(() =>
      mode === 'up' ? session.signUp(email, password, name, about) : session.signIn(email, password),
    );
  };

  return (
    <main className="auth">
      <form className="card auth-card" onSubmit={submit} data-testid="auth-form">
        <h1>{mode === 'up' ? 'Create your account' : 'Sign in'}</h1>
        <p className="muted">Rent films and watch them on your own TV box, laptop or set-top player.</p>
        {mode === 'up' && (
          <label>
            Your name
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              maxLength={64}
              autoComplete="name"
              data-testid="name"
            />
          </label>
        )}
        <label>
          E-mail
          <input
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            required
            autoComplete="email"
            data-testid="email"
          />
        </label>
        <label>
          Password
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            minLength={mode === 'up' ? 8 : undefined}
            autoComplete={mode === 'up' ? 'new-password' : 'current-password'}
            data-testid="password"
          />
        </label>
        {mode === 'up' && (
          <div className="inline">
            <label>
              Age (optional)
              <select
                value={ageBand}
                onChange={(e) => setAgeBand(e.target.value as AgeBand | '')}
                data-testid="age-band"
              >
                <option value="">Prefer not to say</option>
                {AGE_BANDS.filter((b) => b !== 'unknown').map((b) => (
                  <option key={b}>{b}</option>
                ))}
              </select>
            </label>
            <label>
              Region (optional)
              <select
                value={region}
                onChange={(e) => setRegion(e.target.value as Region | '')}
                data-testid="region"
              >
                <option value="">Prefer not to say</option>
                {REGIONS.filter((r) => r !== 'unknown').map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </label>
          </div>
        )}
        {error && (
          <p className="error" role="alert" data-testid="auth-error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy} data-testid="auth-submit">
          {busy ? 'Please wait…' : mode === 'up' ? 'Create account' : 'Sign in'}
        </button>
        <p className="muted">
          {mode === 'up' ? 'Already have an account?' : 'New here?'}{' '}
          <button
            type="button"
            className="link"
            onClick={() => {
              setMode(mode === 'up' ? 'in' : 'up');
              setError(null);
            }}
            data-testid="auth-switch"
          >
            {mode === 'up' ? 'Sign in' : 'Create an account'}
          </button>
        </p>
      </form>
    </main>
  );
}
