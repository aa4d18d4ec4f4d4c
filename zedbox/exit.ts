// Exiting without losing output. On Linux, Node writes stdout and stderr to a
// pipe asynchronously: what the reader has not taken yet (past the pipe's
// 64 KiB) waits in the process, and process.exit() throws it away. So
// `zedctl logs DEVICE | less`, or a test reading a long `zedctl logs`, got the
// first 64 KiB and nothing after. Exit once both streams have written
// everything queued before this call.

export function exitWhenFlushed(code: number, streams: readonly NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  let left = streams.length;
  const done = (): void => {
    if (--left === 0) process.exit(code);
  };
  if (left === 0) process.exit(code);
  // A write's callback runs after every earlier write on the stream has been handed to the OS
  // (or failed: a closed pipe ends the wait too).
  for (const s of streams) s.write('', done);
}
