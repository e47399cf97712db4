import { type RandomFill, randomFill } from "./random.ts";
/**
 * Diffie-Hellman over the 768-bit prime of Message Stream Encryption (MSE/PE), with BigInt.
 * Codec layer: no I/O; the RNG is injected.
 *
 * @module
 */

/** The MSE prime P (768 bits). */
export const DH_PRIME: bigint = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
/** The MSE generator G. */
export const DH_GENERATOR = 2n;
/** Length of a public key or shared secret on the wire, in bytes. */
export const DH_KEY_LENGTH = 96;
/** Length of a private key, in bytes (160 bits, as the spec recommends). */
export const DH_PRIVATE_LENGTH = 20;

/** A key pair: the private exponent and the 96-byte big-endian public key. */
export interface DhKeyPair {
  privateKey: bigint;
  publicKey: Uint8Array;
}

/** `base ** exponent % modulus` by square-and-multiply. */
export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

/** Makes a key pair with a random 160-bit private key. */
export function generateKeyPair(random: RandomFill = randomFill): DhKeyPair {
  const bytes = new Uint8Array(DH_PRIVATE_LENGTH);
  let privateKey = 0n;
  while (privateKey < 2n) {
    random(bytes);
    privateKey = bytesToBigInt(bytes);
  }
  return { privateKey, publicKey: bigIntToBytes(modPow(DH_GENERATOR, privateKey, DH_PRIME)) };
}

/**
 * The shared secret S from the peer's 96-byte public key.
 *
 * @throws {RangeError} If the peer's key is not in [2, P - 2] (a degenerate key).
 */
export function sharedSecret(privateKey: bigint, peerPublicKey: Uint8Array): Uint8Array {
  const y = bytesToBigInt(peerPublicKey);
  if (y < 2n || y > DH_PRIME - 2n) {
    throw new RangeError("Cannot compute MSE shared secret: peer public key out of range");
  }
  return bigIntToBytes(modPow(y, privateKey, DH_PRIME));
}

/** Big-endian bytes to a BigInt. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + bytes.toHex());
}

/** A BigInt to 96 big-endian bytes, left-padded with zeros. */
export function bigIntToBytes(value: bigint): Uint8Array {
  return Uint8Array.fromHex(value.toString(16).padStart(DH_KEY_LENGTH * 2, "0"));
}
