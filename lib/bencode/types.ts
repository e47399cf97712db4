/** A decoded bencode dictionary: a null-prototype object keyed by UTF-8 decoded keys. */
export interface BencodeDict {
  /** A value, by its key. */
  [key: string]: BencodeValue;
}

/**
 * A decoded bencode value. Integers are `number` when they fit in a safe integer and `bigint`
 * otherwise; byte strings stay bytes (`Uint8Array`), since most of them are not text.
 */
export type BencodeValue = number | bigint | Uint8Array | BencodeValue[] | BencodeDict;

/** What {@linkcode encode} accepts: decoded values, plus strings (UTF-8), Maps and `undefined` entries (skipped). */
export type BencodeEncodable =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BencodeEncodable[]
  | ReadonlyMap<string, BencodeEncodable | undefined>
  | { readonly [key: string]: BencodeEncodable | undefined };
