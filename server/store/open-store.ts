/**
 * The store this instance uses: SQLite in the data folder (the default, one instance), or the
 * PostgreSQL database at DATABASE_URL, shared with other instances, which then talk over LISTEN/NOTIFY.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { type Cluster, LocalCluster } from '../cluster.ts';
import type { Repository } from './repository.ts';
import { SqliteRepository } from './sqlite.ts';

/** The repository alone (the CLI): PostgreSQL when a URL is given, else SQLite in the data folder. */
export async function openRepository(dataDir: string, databaseUrl: string | undefined): Promise<Repository> {
  if (!databaseUrl) return new SqliteRepository(join(dataDir, 'rental.sqlite'));
  const { PgRepository } = await import('./postgres.ts');
  return PgRepository.open(databaseUrl);
}

export async function openStore(
  dataDir: string,
  databaseUrl: string | undefined,
): Promise<{ repo: Repository; cluster: Cluster }> {
  const instanceId = randomUUID();
  if (!databaseUrl) {
    return {
      repo: new SqliteRepository(join(dataDir, 'rental.sqlite')),
      cluster: new LocalCluster(instanceId),
    };
  }
  // Loaded only when asked for: the embedded default needs no PostgreSQL client.
  const { PgRepository, PgCluster } = await import('./postgres.ts');
  const repo = await PgRepository.open(databaseUrl);
  const cluster = await PgCluster.open(databaseUrl, instanceId);
  return { repo, cluster };
}
