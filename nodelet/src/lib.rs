//! nodelet
