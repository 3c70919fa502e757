/**
 * Test helpers over real components: free loopback ports, throwaway nats-server and
 * redis-server processes, an SMTP sink that records what arrived, polling with a
 * deadline, and raw SMTP dialogues for asserting exact reply lines.
 * (A whole Transit cluster comes from @transit/cluster.)
 */
export { TestkitError, type TestkitErrorCode } from './errors.ts';
export { freeClusterPorts, freePort, freePortOffset } from './ports.ts';
export { startNats, startRedis, type NatsHandle, type NatsOptions, type RedisHandle, type RedisOptions } from './servers.ts';
export { startSmtpSink, type ReceivedMessage, type SinkReply, type SmtpSink, type SmtpSinkOptions } from './smtp-sink.ts';
export { openSmtpDialogue, smtpTranscript, type SmtpDialogue, type TranscriptOptions } from './smtp-transcript.ts';
export { waitFor, type WaitOptions } from './wait.ts';
