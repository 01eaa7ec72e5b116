/**
 * Cork a Node socket until the end of this turn of the event loop (Node only: server connections and
 * the headless terminal's socket). Messages sent in one turn (a reply and an update, a licence's
 * acknowledgement and a title's report) then leave in one write: one system call, and one wake-up
 * of the peer instead of one each.
 */
export function corkerFor(socket: { cork(): void; uncork(): void }): () => void {
  let corked = false;
  return () => {
    if (corked) return;
    corked = true;
    socket.cork();
    setImmediate(() => {
      corked = false;
      socket.uncork();
    });
  };
}
