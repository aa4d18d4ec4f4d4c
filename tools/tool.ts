// The contract of a command-line tool in the zedbox bundle.

/** A command-line tool: runs to completion and returns an exit code. */
export interface ToolSpec {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  /** false for a tool that does not take the device's common options (zedctl has its own). */
  readonly commonOptions?: boolean;
  main(args: string[], env: ToolEnv): Promise<number>;
}

export interface ToolEnv {
  /** Where the tool's report goes (stdout); logs go to stderr. */
  out: (text: string) => void;
}
