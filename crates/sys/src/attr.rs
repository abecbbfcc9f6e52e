//! Process attributes nix does not cover: ioprio_set, personality, and friends.
