from userctl.cli.main import main

main()
