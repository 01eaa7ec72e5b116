/** Store app entry: the same bundle runs in a browser (served at /store/) and in the Electron shell. */
import { createRoot } from 'react-dom/client';
import type { SocketLike } from '../../shared/rental-client.ts';
import { StoreApp } from './store-app.tsx';
import { StoreSession } from './store-session.ts';
import { SessionContext } from './use-store.ts';
import './styles.css';

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const session = new StoreSession(wsUrl, (url) => new WebSocket(url) as unknown as SocketLike, localStorage);
void session.start();

createRoot(document.getElementById('root') as HTMLElement).render(
  <SessionContext.Provider value={session}>
    <StoreApp />
  </SessionContext.Provider>,
);
