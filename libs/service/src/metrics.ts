/**
 * The gauges every role refreshes on a scrape: JetStream's health and the depth and oldest
 * age of the work queues. Every role reports them (any one replica that can reach NATS is
 * enough), so dashboards take max by (stream) across instances.
 */
import { STREAMS, type Bus } from '@transit/bus';
import { cachedProbe, metrics, type Probe } from '@transit/metrics';

/** Work queues (and the poison store, which must stay empty); the event log and the Safety Net are logs, not queues. */
export const QUEUE_STREAMS = [STREAMS.submit, STREAMS.deliver, STREAMS.poison] as const;

type StreamState = { stream: string; messages: number; firstTs: string };

/** Seconds since `firstTs`, 0 for an empty stream (JetStream reports the zero time then). */
export function oldestAgeSeconds(state: Pick<StreamState, 'messages' | 'firstTs'>, now: number): number {
  if (state.messages === 0) return 0;
  const first = Date.parse(state.firstTs);
  return Number.isFinite(first) && first > 0 ? Math.max(0, (now - first) / 1000) : 0;
}

export function jetStreamProbe(bus: Bus, now: () => number = Date.now): Probe {
  return cachedProbe<StreamState[]>({
    fetch: async () => {
      // Disconnected: say so at once instead of waiting for request timeouts.
      if (!bus.connected()) throw new Error('NATS disconnected');
      return Promise.all(
        QUEUE_STREAMS.map(async (stream) => {
          const info = await bus.jsm.streams.info(stream);
          return { stream, messages: info.state.messages, firstTs: info.state.first_ts };
        }),
      );
    },
    apply: (result) => {
      metrics.jetstreamUp.set(result.ok ? 1 : 0);
      // Unknown is not zero: without an answer the queue series disappear rather than claim empty queues.
      metrics.queueMessages.reset();
      metrics.queueOldestAge.reset();
      if (!result.ok) return;
      for (const s of result.value) {
        metrics.queueMessages.set({ stream: s.stream }, s.messages);
        metrics.queueOldestAge.set({ stream: s.stream }, oldestAgeSeconds(s, now()));
      }
    },
  });
}
