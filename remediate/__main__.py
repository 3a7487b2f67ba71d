from remediate.cli.main import main

raise SystemExit(main())
