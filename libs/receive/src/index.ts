export { planEndpoints, startReceiveEngine, type Endpoint, type ReceiveEngine, type ReceiveEngineOptions } from './engine.ts';
export { TransitSMTPServer, TransitConnection, TransitStream, commandLineProblem } from './smtp-adapter.ts';
export { OUTBOUND_PROXY_PORT, receiveConnectorsFor, type ListeningRole } from './roles.ts';
export { startListenersFor } from './listeners.ts';
