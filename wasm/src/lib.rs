//! DropFix browser SDK bridge (filled in by the browser SDK issue).
