/** The storage contract on PostgreSQL: the same assertions as on SQLite. */
import { afterEach } from 'node:test';
import { PgRepository } from '../../server/store/postgres.ts';
import { cleanup, defer } from '../harness.ts';
import { freshDatabase, PG_SKIP } from '../pg-databases.ts';
import { repositoryContract } from '../server/repository-contract.ts';

afterEach(cleanup);

repositoryContract(
  'PostgreSQL',
  {
    async open() {
      const db = await freshDatabase();
      defer(db.drop);
      return { repo: await PgRepository.open(db.url), again: () => PgRepository.open(db.url) };
    },
  },
  PG_SKIP,
);
