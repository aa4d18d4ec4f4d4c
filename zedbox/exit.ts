// Exiting without losing output. On Linux, Node writes stdout and stderr to a
// pipe asynchronously: what the reader has not taken yet (past the pipe's
// 64 KiB) waits in the process, and process.exit() throws it away. So
// `zedctl logs DEVICE | less`, or a test reading a long `zedctl logs`, got the
// first 64 KiB and nothing after. Exit once both streams have written
// everything queued before this call.

/** The code exitWhenFlushed was asked for, while it waits. */
let pendingCode: number | undefined;

export function exitWhenFlushed(code: number, streams: readonly NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  pendingCode = code;
  let left = streams.length;
  const done = (): void => {
    if (--left === 0) process.exit(code);
  };
  if (left === 0) process.exit(code);
  // A write's callback runs after every earlier write on the stream has been handed to the OS
  // (or failed: a closed pipe ends the wait too).
  for (const s of streams) s.write('', done);
}

/**
 * `ipcmonitor ... | head` closes the pipe early; that is not an error, so EPIPE on stdout ends
 * the command quietly with 0 while it runs. Once it is done and exitWhenFlushed waits, it is
 * left to that (it exits with the command's own code when stderr is written too): a failure
 * must not read as success because nobody read its output.
 */
export function exitQuietlyOnClosedStdout(stdout: NodeJS.WritableStream = process.stdout): void {
  stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (pendingCode === undefined) process.exit(0);
  });
}
