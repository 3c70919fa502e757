export type TestkitErrorCode = 'BINARY_NOT_FOUND' | 'EXITED' | 'NOT_READY' | 'TIMEOUT' | 'CONNECTION';

/** Every failure the testkit reports: a code to branch on, a message for the person reading the test log. */
export class TestkitError extends Error {
  readonly code: TestkitErrorCode;
  constructor(code: TestkitErrorCode, message: string) {
    super(message);
    this.name = 'TestkitError';
    this.code = code;
  }
}
