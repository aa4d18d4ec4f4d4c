// Errors the bus raises to its callers. Each names the collection and key involved.

export class BusError extends Error {
  override name = 'BusError';
}

/** The value does not match the collection's schema; `problems` names each bad field. */
export class InvalidValueError extends BusError {
  override name = 'InvalidValueError';
  constructor(readonly type: string, readonly key: string, readonly problems: string[]) {
    super(`${type}/${key}: invalid value: ${problems.join('; ')}`);
  }
}

export class ValueTooLargeError extends BusError {
  override name = 'ValueTooLargeError';
  constructor(readonly type: string, readonly key: string, readonly bytes: number, readonly limit: number) {
    super(`${type}/${key}: value is ${bytes} bytes, over the ${limit}-byte limit of ${type}`);
  }
}

export class InvalidKeyError extends BusError {
  override name = 'InvalidKeyError';
  constructor(readonly type: string, readonly key: string, reason: string) {
    super(`${type}: key ${JSON.stringify(key)}: ${reason}`);
  }
}

export class NotOwnerError extends BusError {
  override name = 'NotOwnerError';
  constructor(readonly type: string, readonly agent: string, readonly owner: string) {
    super(`${agent} cannot publish ${type}: it is owned by ${owner}`);
  }
}

export class UnknownCollectionError extends BusError {
  override name = 'UnknownCollectionError';
  constructor(readonly type: string) {
    super(`unknown collection type ${type}: it is not declared in the catalogue`);
  }
}

export class UnknownKeyError extends BusError {
  override name = 'UnknownKeyError';
  constructor(readonly type: string, readonly key: string) {
    super(`${type}/${key}: cannot unpublish a key that is not published`);
  }
}

/** Another live process already binds this agent's bus endpoint. */
export class EndpointBusyError extends BusError {
  override name = 'EndpointBusyError';
  constructor(readonly agent: string, readonly endpoint: string, readonly holderPid: number | undefined, detail: string) {
    super(`${agent}: bus endpoint ${endpoint} is owned by ${holderPid ? `live process ${holderPid}` : 'another live process'} (${detail}); refusing to bind it twice`);
  }
}

export class ClosedError extends BusError {
  override name = 'ClosedError';
}
