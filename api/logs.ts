// One log line as it travels to the controller and is stored there: NDJSON inside
// a batch's gzip. Agents' lines keep their structured fields; an app's output line
// names the app and the stream it came from.
import { Type, type Static } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

export const LogLineSchema = Type.Object(
  {
    /** When it was written (RFC 3339, from the agent or from Docker's timestamp). */
    time: Type.String(),
    /** The agent ("zedagent") or "app". */
    source: Type.String({ minLength: 1, maxLength: 64 }),
    level: Type.Union([Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]),
    msg: Type.String(),
    /** For app output: the app's name and id, and stdout or stderr. */
    app: Type.Optional(Type.String()),
    appId: Type.Optional(Type.String()),
    stream: Type.Optional(Type.Union([Type.Literal('stdout'), Type.Literal('stderr')])),
    /** The agent's structured fields beyond the core ones. */
    fields: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  strict,
);
export type LogLine = Static<typeof LogLineSchema>;
