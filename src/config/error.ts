/** A bad setting: the message is one line naming the variable, never echoing a secret. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
