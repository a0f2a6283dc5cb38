// The libraries the web page's in-browser verifier (api/server/web/verify.js) uses, bundled once into
// api/server/web/verify-lib.js by scripts/build_ui_bundle.sh from the versions pinned in package-lock.json.
// Only what the verifier needs is exported (esbuild drops the rest): keccak256, ABI encoding and decoding,
// EIP-55 addresses, EIP-191 signature recovery (viem, on @noble/hashes and @noble/curves) and RFC 8785
// canonical JSON (canonicalize).
import canonicalize from "canonicalize";
import {
  bytesToHex,
  concat,
  decodeAbiParameters,
  encodeAbiParameters,
  getAddress,
  hashMessage,
  hexToBytes,
  isAddress,
  keccak256,
  recoverAddress,
  stringToBytes,
  toFunctionSelector,
} from "viem";

globalThis.SecureflowVerifyLib = Object.freeze({
  bytesToHex,
  canonicalize,
  concat,
  decodeAbiParameters,
  encodeAbiParameters,
  getAddress,
  hashMessage,
  hexToBytes,
  isAddress,
  keccak256,
  recoverAddress,
  stringToBytes,
  toFunctionSelector,
});
