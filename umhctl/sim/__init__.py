"""The simulated site: every blueprint device as a real sshd in a Flatcar-shaped root provisioned by real Ignition.

Everything in this package is a simulation part; none of it is ever installed on a real device.
"""
