/** A line that cannot run: the message names the cmdlet, parameter or value at fault, for a person. */
export class EmsError extends Error {
  readonly code = 'EMS_ERROR';
  constructor(message: string) {
    super(message);
    this.name = 'EmsError';
  }
}
