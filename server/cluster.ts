/**
 * What one server instance tells the others sharing its database: new jobs, an order that changed
 * (for the customer's store apps, wherever they are connected), a terminal that came, went or was
 * linked. In one process it is a local echo; on PostgreSQL it is LISTEN/NOTIFY (server/store/postgres.ts).
 * Every message also reaches the instance that sent it, so one code path serves both.
 */
export type ClusterChannel = 'jobs' | 'order' | 'terminal';

export interface Cluster {
  readonly instanceId: string;
  publish(channel: ClusterChannel, payload: string): void;
  on(channel: ClusterChannel, fn: (payload: string) => void): void;
  close(): Promise<void>;
}

export class Listeners {
  private readonly map = new Map<ClusterChannel, ((payload: string) => void)[]>();
  on(channel: ClusterChannel, fn: (payload: string) => void) {
    this.map.set(channel, [...(this.map.get(channel) ?? []), fn]);
  }
  deliver(channel: ClusterChannel, payload: string) {
    for (const fn of this.map.get(channel) ?? []) fn(payload);
  }
}

export class LocalCluster implements Cluster {
  private readonly listeners = new Listeners();
  /** Closed before the store is: what a timer publishes later (an order's update) reaches no one. */
  private closed = false;
  constructor(readonly instanceId: string) {}
  publish(channel: ClusterChannel, payload: string) {
    if (this.closed) return;
    queueMicrotask(() => {
      if (!this.closed) this.listeners.deliver(channel, payload);
    });
  }
  on(channel: ClusterChannel, fn: (payload: string) => void) {
    this.listeners.on(channel, fn);
  }
  async close() {
    this.closed = true;
  }
}
