//! clone/fork, setns, exec, pidfd, fd passing, and the self-exe sealing defence.
