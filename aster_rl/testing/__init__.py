"""Test kit: a fake exchange on loopback for your own tests of brokers and runners."""
