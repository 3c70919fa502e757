import { defineConfig } from 'vitest/config';

// Integration suites start real nats-server, redis-server and Transit processes; two
// cores are shared, so files run two at a time and get generous hook timeouts.
export default defineConfig({
  test: {
    include: ['libs/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'tools/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
