// The device's state for the person standing next to it: the LED blink code the
// agents drive and ledmanager shows (EVE's LedBlinkCounter and its code table).
import { Type, type Static } from '@sinclair/typebox';
import { defineCollection } from '../catalog';

/** EVE's blink codes (docs/LED-INDICATION.md): N quick blinks, a pause, again. */
export const LED_CODES: Readonly<Record<number, string>> = {
  0: 'starting',
  1: 'waiting for an IP address on the management ports',
  2: 'trying to connect to the controller',
  3: 'connected to the controller, not yet onboarded',
  4: 'connected and onboarded',
  5: 'radio silence',
  10: 'onboarding failed',
  15: 'the controller\'s signature is invalid or missing',
  17: 'onboarding failed: this serial is onboarded with other keys',
  18: 'onboarding failed: the controller does not know this device',
};

export function ledMeaning(counter: number): string {
  return LED_CODES[counter] ?? 'unknown code';
}

export const LedBlinkCounterSchema = Type.Object(
  {
    counter: Type.Integer({ minimum: 0, maximum: 20 }),
    /** Why, in words (for diag and logs). */
    reason: Type.String(),
  },
  { additionalProperties: false },
);
export type LedBlinkCounter = Static<typeof LedBlinkCounterSchema>;

export const LedBlinkCounterCollection = defineCollection({
  type: 'LedBlinkCounter', owner: 'zedagent', schema: LedBlinkCounterSchema, keyOf: () => 'global',
  description: 'The LED blink code for the device\'s link to its controller (EVE\'s codes), key "global"',
});

export const DEVICE_STATE_COLLECTIONS = [LedBlinkCounterCollection] as const;
