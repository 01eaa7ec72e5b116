/**
 * This instance says it is alive every few seconds, in the database every instance shares. On a
 * shared store it also returns to the queue the jobs of instances that stopped beating (they died
 * with jobs in hand), and says so, so an instance that can run them looks.
 */
import { log } from './log.ts';
import { INSTANCE_BEAT_MS, type Repository } from './store/repository.ts';

export class InstanceBeat {
  private timer: ReturnType<typeof setInterval> | undefined;
  onRecovered: () => void = () => {};

  constructor(
    private readonly repo: Repository,
    private readonly instanceId: string,
    private readonly role: string,
  ) {}

  async start(): Promise<void> {
    // One instance alone on its store: no connection survived the previous process.
    if (!this.repo.shared && this.role !== 'content') await this.repo.clearPresence();
    await this.repo.beat(this.instanceId, this.role, Date.now());
    this.timer = setInterval(() => void this.beat(), INSTANCE_BEAT_MS);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      const now = Date.now();
      await this.repo.beat(this.instanceId, this.role, now);
      if (this.repo.shared && (await this.repo.recoverJobs(now)) > 0) {
        log('warn', 'jobs-recovered', { from: 'instances that stopped beating' });
        this.onRecovered();
      }
    } catch (err) {
      log('error', 'instance-beat-failed', { error: String(err) });
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
