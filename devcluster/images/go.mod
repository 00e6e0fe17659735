module jobwarden.local/devcluster/images

go 1.26.0
