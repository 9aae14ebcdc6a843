from umhctl.cli import main

main()
