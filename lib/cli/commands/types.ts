/** The shape of a CLI subcommand. */
import type { CommandSpec } from '../args.js';
import type { CliContext } from '../context.js';

/** A subcommand: its spec (options, help) and its body, which parses `argv` itself and resolves to an exit code. */
export interface CliCommand {
  readonly spec: CommandSpec;
  run(ctx: CliContext, argv: readonly string[]): Promise<number>;
}
