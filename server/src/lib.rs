//! DropFix verifier (filled in by the verifier issue).
