// Every socket the bus reads from is drained the same way.
import type { Logger } from '../lib/log';

/** Hands each message to `handle` until the socket closes. A failure while it is open is
 *  logged: nothing else would notice that the socket has stopped delivering. */
export async function receiveEach(
  socket: AsyncIterable<Buffer[]> & { readonly closed: boolean },
  handle: (frames: Buffer[]) => void,
  log: Logger,
  what: Record<string, unknown>,
): Promise<void> {
  try {
    for await (const frames of socket) handle(frames);
  } catch (err) {
    if (!socket.closed) log.error('bus receive loop failed', { ...what, error: err });
  }
}
