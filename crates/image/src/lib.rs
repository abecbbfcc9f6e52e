//! berth-image: images and distribution.
