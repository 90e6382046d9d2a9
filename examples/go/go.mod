module vizochok.example/verify

go 1.19
