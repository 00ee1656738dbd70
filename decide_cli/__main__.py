from decide_cli.main import main

main()
